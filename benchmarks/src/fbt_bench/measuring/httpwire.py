"""A small HTTP/1.1 keep-alive client on asyncio Protocols, for the open-loop load generator.

A general-purpose client (httpx, aiohttp) builds request and response objects, header maps and futures
for every call; a load generator sends the same request again and again and only needs the status, the
body and whether the connection can be reused. So requests arrive here as ready-made bytes, each
connection carries one request at a time (no pipelining, so an answer always belongs to the request in
flight), and answers go to plain callbacks instead of futures. Connections are opened on demand up to a
cap; when every connection is busy and the cap is reached, ``send`` says so instead of queueing, so the
caller can count the request as late rather than hide the wait.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

# Statuses whose responses never carry a body, whatever their headers say (RFC 9112 §6.3).
_NO_BODY = frozenset({204, 304})
_CRLF = b"\r\n"
_HEAD_END = b"\r\n\r\n"


class ProtocolError(Exception):
    """The server's bytes are not an HTTP/1.1 response this reader understands."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    keep_alive: bool


class ResponseReader:
    """Incremental parse of one response at a time: status line, framing headers, then the body.

    Only what the generator needs is parsed: the status code, Content-Length / chunked framing and the
    Connection header. Other headers are skipped without being decoded.
    """

    __slots__ = ("_buf", "_head_request", "_parsed")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._head_request = False
        # (status, body start, Content-Length or -1 for chunked or -2 for "until close", keep-alive)
        self._parsed: tuple[int, int, int, bool] | None = None

    def expect(self, *, head_request: bool = False) -> None:
        """Reset for the next response (a HEAD response has headers only)."""
        self._buf.clear()
        self._parsed = None
        self._head_request = head_request

    def feed(self, data: bytes) -> Response | None:
        """Add received bytes; return the response once it is complete."""
        self._buf += data
        if self._parsed is None:
            end = self._buf.find(_HEAD_END)
            if end < 0:
                return None
            self._parsed = self._parse_head(bytes(self._buf[:end]), end + 4)
        status, start, length, keep_alive = self._parsed
        if length >= 0:
            if len(self._buf) - start < length:
                return None
            return Response(status, bytes(self._buf[start : start + length]), keep_alive)
        if length == -1:
            body = _dechunk(self._buf, start)
            return None if body is None else Response(status, body, keep_alive)
        return None  # the body runs until the server closes: see eof()

    def eof(self) -> Response | None:
        """The server closed: complete a read-until-close body, or None if the response was cut short."""
        if self._parsed is None or self._parsed[2] != -2:
            return None
        status, start, _, _ = self._parsed
        return Response(status, bytes(self._buf[start:]), False)

    def _parse_head(self, head: bytes, body_start: int) -> tuple[int, int, int, bool]:
        lines = head.split(_CRLF)
        version, _, rest = lines[0].partition(b" ")
        if not version.startswith(b"HTTP/1.") or len(rest) < 3 or not rest[:3].isdigit():
            raise ProtocolError(f"bad status line {lines[0][:80]!r}")
        status = int(rest[:3])
        keep_alive = version == b"HTTP/1.1"
        length = -2
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                length = -1
            elif name == b"connection":
                keep_alive = b"keep-alive" in value.lower() or (keep_alive and b"close" not in value.lower())
        if self._head_request or status in _NO_BODY or 100 <= status < 200:
            length = 0
        return status, body_start, length, keep_alive and length != -2


def _dechunk(buf: bytearray, pos: int) -> bytes | None:
    """The body of a complete chunked message starting at ``pos``, or None while chunks are missing."""
    parts: list[bytes] = []
    while True:
        eol = buf.find(_CRLF, pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
        if size == 0:
            # The last chunk's CRLF plus the blank line that ends the (usually empty) trailers.
            return b"".join(parts) if buf.find(_HEAD_END, eol - 2) >= 0 else None
        if len(buf) < eol + 2 + size + 2:
            return None
        parts.append(bytes(buf[eol + 2 : eol + 2 + size]))
        pos = eol + 2 + size + 2


class Listener(Protocol):
    """What the pool reports, per request index. ``error`` is a short kind, ``detail`` a sample text."""

    def sent(self, index: int) -> None: ...

    def answered(self, index: int, response: Response) -> None: ...

    def failed(self, index: int, error: str, detail: str) -> None: ...


class _Connection(asyncio.Protocol):
    __slots__ = ("_pool", "_reader", "index", "since", "transport")

    def __init__(self, pool: "WirePool") -> None:
        self._pool = pool
        self._reader = ResponseReader()
        self.transport: asyncio.Transport | None = None
        self.index = -1  # the request in flight, or -1 when idle
        self.since = 0.0  # when the request in flight (or the connect) began, for the timeout sweep

    def send(self, index: int, payload: bytes, now: float) -> None:
        assert self.transport is not None  # only called once connection_made has run
        self.index, self.since = index, now
        self._reader.expect(head_request=payload.startswith(b"HEAD "))
        self.transport.write(payload)
        self._pool.listener.sent(index)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.index < 0:  # bytes nobody asked for: the stream can no longer be trusted to line up
            self._pool.fail(self, "protocol", f"unsolicited bytes {data[:40]!r}")
            return
        try:
            response = self._reader.feed(data)
        except (ProtocolError, ValueError) as exc:
            self._pool.fail(self, "protocol", f"{type(exc).__name__}: {exc}")
            return
        if response is not None:
            self._pool.answered(self, response)

    def eof_received(self) -> bool | None:
        response = self._reader.eof()
        if response is not None and self.index >= 0:
            self._pool.answered(self, response)
        return None  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self._pool.lost(self, exc)


class WirePool:
    """Keep-alive connections to one host, opened on demand up to ``max_connections``."""

    def __init__(
        self,
        host: str,
        port: int,
        listener: Listener,
        *,
        max_connections: int,
        timeout_s: float,
        clock: Callable[[], float],
    ) -> None:
        self.listener = listener
        self._host, self._port = host, port
        self._max = max_connections
        self._timeout_s = timeout_s
        self._clock = clock
        self._idle: list[_Connection] = []  # LIFO: reuse the warmest connection, open fewer in total
        self._all: set[_Connection] = set()
        self._connecting: dict[_Connection, tuple[asyncio.Task[object], bytes]] = {}
        self.opened = 0
        self.most_open = 0
        self.in_flight = 0
        self._idle_waiters: list[asyncio.Future[None]] = []

    def send(self, index: int, payload: bytes) -> bool:
        """Send now on an idle connection or a new one; False if the cap is reached and all are busy."""
        if self._idle:
            self.in_flight += 1
            self._idle.pop().send(index, payload, self._clock())
            return True
        if len(self._all) >= self._max:
            return False
        self.in_flight += 1
        self._open(index, payload)
        return True

    async def idle(self) -> None:
        """Return once no request is in flight (answered, failed or timed out by ``sweep``)."""
        if self.in_flight:
            waiter = asyncio.get_running_loop().create_future()
            self._idle_waiters.append(waiter)
            await waiter

    def _settled(self) -> None:
        self.in_flight -= 1
        if not self.in_flight:
            for waiter in self._idle_waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._idle_waiters.clear()

    async def warm(self, count: int) -> None:
        """Open ``count`` idle connections before the run, so early requests do not pay for a connect."""
        for _ in range(min(count, self._max) - len(self._all)):
            self._open(-1, b"")
        while self._connecting:
            await asyncio.sleep(0.005)

    def _open(self, index: int, payload: bytes) -> None:
        conn = _Connection(self)
        conn.index, conn.since = index, self._clock()
        self._all.add(conn)
        self.opened += 1
        self.most_open = max(self.most_open, len(self._all))
        loop = asyncio.get_running_loop()
        task = loop.create_task(loop.create_connection(lambda: conn, self._host, self._port))
        self._connecting[conn] = (task, payload)
        task.add_done_callback(lambda done: self._connected(conn, done))

    def _connected(self, conn: _Connection, done: "asyncio.Task[object]") -> None:
        _, payload = self._connecting.pop(conn)
        if done.cancelled() or done.exception() is not None:
            self._all.discard(conn)
            exc = done.exception() if not done.cancelled() else TimeoutError("connect timed out")
            if conn.index >= 0:
                self._finish(conn, "connect " + type(exc).__name__, str(exc))
            return
        if conn.index >= 0:
            conn.send(conn.index, payload, conn.since)
        else:
            self._idle.append(conn)

    def answered(self, conn: _Connection, response: Response) -> None:
        index, conn.index = conn.index, -1
        self.listener.answered(index, response)
        self._settled()
        if response.keep_alive and conn.transport is not None and not conn.transport.is_closing():
            self._idle.append(conn)
        else:
            self._drop(conn)

    def fail(self, conn: _Connection, error: str, detail: str) -> None:
        """Give up on the connection's request and the connection itself."""
        if conn.index >= 0:
            self._finish(conn, error, detail)
        self._drop(conn)

    def lost(self, conn: _Connection, exc: Exception | None) -> None:
        if conn.index >= 0:
            self._finish(conn, "disconnected", f"connection lost before the answer: {exc!r}")
        self._all.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)

    def sweep(self) -> None:
        """Fail requests (and connects) older than the timeout; their connections cannot be reused."""
        deadline = self._clock() - self._timeout_s
        for conn in [c for c in self._all if c.index >= 0 and c.since < deadline]:
            pending = self._connecting.get(conn)
            if pending is not None:
                pending[0].cancel()  # _connected reports it as a connect timeout
            else:
                self.fail(conn, "timeout", f"no answer within {self._timeout_s:g} s")

    def close(self) -> None:
        for task, _ in self._connecting.values():
            task.cancel()
        for conn in list(self._all):
            self._drop(conn)

    def _finish(self, conn: _Connection, error: str, detail: str) -> None:
        index, conn.index = conn.index, -1
        self.listener.failed(index, error, detail)
        self._settled()

    def _drop(self, conn: _Connection) -> None:
        self._all.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)
        if conn.transport is not None:
            conn.transport.abort()
