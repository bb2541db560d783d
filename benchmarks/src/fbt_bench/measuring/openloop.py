"""An open-loop HTTP/1.1 load generator that runs in its own process and reports its own CPU cost.

Request ``i`` has an intended send time fixed before the run (a constant rate, or Poisson arrivals from
a seed) and its latency is measured from that intended time, so a slow server cannot slow the arrivals
down and hide its own slowness. Connections open on demand up to ``max_connections``; a request due
while all of them are busy is counted as ``late`` and not sent, never queued behind the others.

The generator is a child process (``python -m fbt_bench.measuring.openloop``): its CPU is then its own,
measurable apart from the harness, and it can be pinned to a core. The spec goes in as one JSON line on
stdin; any later input, or stdin closing, ends the schedule early (so a harness that dies takes the load
with it); the result comes back as one JSON document on stdout, with per-request columns as base64 of
packed arrays so 100k requests stay cheap. Nothing is pickled.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import random
import resource
import sys
import time
from array import array
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fbt_bench.measuring.httpwire import Response, WirePool

LATE = -1  # status of a request that was due while every connection was busy: not sent
TRANSPORT_ERROR = 0  # status of a request that got no HTTP answer (refused, timeout, reset)
MAX_ERROR_SAMPLES = 5
LEAD_S = 0.05  # set-up time before the first intended send, so request 0 is not late by construction


@dataclass(frozen=True, slots=True)
class OpenLoopSpec:
    """What to send, how often and for how long. Every field is JSON-serialisable."""

    base_url: str  # http://host:port (plain HTTP only)
    rate_hz: float
    duration_s: float
    method: str = "POST"
    path: str = "/log/"
    # Every occurrence of ``index_marker`` in the body is replaced by the request's index.
    body: str = '{"msg": "open loop #{i}"}'
    headers: dict[str, str] = field(default_factory=dict)
    index_marker: str = "{i}"
    poisson_seed: int | None = None  # None: a fixed grid at rate_hz; an int: seeded Poisson arrivals
    max_connections: int = 512
    warm_connections: int = 0  # opened before the first send, so early requests pay no connect
    timeout_s: float = 30.0
    job_id_field: str = "job_id"  # read from JSON bodies of 2xx answers
    pin_cpu: bool = False  # pin the generator to a core of its own; a no-op below 3 cores
    use_uvloop: bool = True  # fall back to asyncio's loop when uvloop is not installed


@dataclass(slots=True)
class OpenLoopResult:
    """Counts, the generator's CPU cost and one record per planned request (columns share an index).

    ``status`` is the HTTP status, ``TRANSPORT_ERROR`` (0) or ``LATE`` (-1). Times are seconds from the
    schedule's start; ``latency_s`` runs from the intended send time to the answer and is NaN for late
    requests and transport errors. ``job_ids`` holds "" where the answer carried none.
    """

    planned: int
    sent: int
    ok: int
    errors: int
    late: int
    errors_by_kind: dict[str, int]
    error_samples: list[str]
    cpu_s: float  # generator CPU from the first send to the last answer (user + system)
    cpu_us_per_request: float  # cpu_s per request sent
    startup_cpu_s: float  # interpreter start and imports, before the measured window
    # Voluntary context switches in the window: the generator's wake-ups. At low rates each request costs
    # about two of its own (its send timer, then its answer), and a wake-up's CPU (cold caches and TLB
    # after other processes ran) can outweigh the request's own work: this says how much of cpu_s is that.
    wakeups: int
    elapsed_s: float
    connections_opened: int
    most_connections: int
    placement: dict[str, Any]
    loop: str
    intended_s: array[float]
    sent_s: array[float]
    latency_s: array[float]
    status: array[int]
    job_ids: list[str]

    @property
    def wakeups_per_request(self) -> float:
        return self.wakeups / self.sent if self.sent else 0.0

    @property
    def core_share(self) -> float:
        """The generator's CPU over its window, as a share of one core."""
        return self.cpu_s / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def achieved_rate(self) -> float:
        """Requests sent per second of schedule: below the spec's rate when many were late."""
        span = self.intended_s[-1] if self.planned else 0.0
        return self.sent / span if span > 0 else 0.0

    def ok_latencies_s(self) -> list[float]:
        return [lat for lat, st in zip(self.latency_s, self.status, strict=True) if 200 <= st < 300]

    def ok_job_ids(self) -> list[str]:
        return [job for job, st in zip(self.job_ids, self.status, strict=True) if 200 <= st < 300 and job]


def concurrent_core_share(results: list[OpenLoopResult]) -> float:
    """The share of a core that generators running side by side used together (their CPU over the longest
    window): one scenario's load, whatever number of generator processes sent it."""
    longest = max((r.elapsed_s for r in results), default=0.0)
    return sum(r.cpu_s for r in results) / longest if longest > 0 else 0.0


def schedule(spec: OpenLoopSpec) -> array[float]:
    """Intended send offsets in seconds, fixed before the run whatever the server does."""
    if spec.rate_hz <= 0 or spec.duration_s <= 0:
        raise ValueError("rate and duration must be positive")
    if spec.poisson_seed is None:
        return array("d", (i / spec.rate_hz for i in range(round(spec.rate_hz * spec.duration_s))))
    rng, offsets, t = random.Random(spec.poisson_seed), array("d"), 0.0
    while t < spec.duration_s:
        offsets.append(t)
        t += rng.expovariate(spec.rate_hz)
    return offsets


def run_open_loop(spec: OpenLoopSpec) -> OpenLoopResult:
    """Run the generator process to completion, from synchronous code."""
    return asyncio.run(run_open_loop_async(spec))


async def run_open_loop_async(spec: OpenLoopSpec, stop: asyncio.Event | None = None) -> OpenLoopResult:
    """Run the generator process; setting ``stop`` ends its schedule early (in-flight requests finish)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fbt_bench.measuring.openloop",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(asdict(spec)).encode() + b"\n")
    await proc.stdin.drain()
    output = asyncio.create_task(proc.communicate())  # stdin stays open until the child has answered
    if stop is not None:
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({output, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not output.done():
            proc.stdin.write(b"stop\n")
        stopping.cancel()
    out, err = await output
    if proc.returncode != 0:
        tail = err.decode(errors="replace")[-2000:]
        raise RuntimeError(f"open-loop generator exited with {proc.returncode}: {tail}")
    return _decode_result(json.loads(out))


def _decode_result(doc: dict[str, Any]) -> OpenLoopResult:
    columns = doc.pop("columns")
    decoded: dict[str, Any] = {}  # float and int columns, each to its own field
    for name, typecode in _COLUMNS.items():
        column = array(typecode)
        column.frombytes(base64.b64decode(columns[name]))
        decoded[name] = column
    return OpenLoopResult(**doc, **decoded, job_ids=columns["job_ids"])


_COLUMNS = {"intended_s": "d", "sent_s": "d", "latency_s": "d", "status": "h"}


# --- the child process ---------------------------------------------------------------------------------


class _Recorder:
    """Fills the per-request columns from the pool's callbacks; times are offsets from ``start``."""

    def __init__(self, spec: OpenLoopSpec, offsets: array[float]) -> None:
        n = len(offsets)
        self.intended = offsets
        self.sent_s = array("d", [math.nan]) * n
        self.latency_s = array("d", [math.nan]) * n
        self.status = array("h", [LATE]) * n
        self.job_ids = [""] * n
        self.ok = self.late = 0
        self.errors_by_kind: dict[str, int] = {}
        self.samples: list[str] = []
        self.start = 0.0
        self._job_field = spec.job_id_field

    def sent(self, index: int) -> None:
        self.sent_s[index] = time.perf_counter() - self.start

    def answered(self, index: int, response: Response) -> None:
        self.latency_s[index] = time.perf_counter() - self.start - self.intended[index]
        self.status[index] = response.status
        if 200 <= response.status < 300:
            self.ok += 1
            self.job_ids[index] = _job_id(response.body, self._job_field)
        else:
            self._error(index, f"http {response.status}", response.body[:200].decode(errors="replace"))

    def failed(self, index: int, error: str, detail: str) -> None:
        self.status[index] = TRANSPORT_ERROR
        self._error(index, error, detail)

    def _error(self, index: int, error: str, detail: str) -> None:
        self.errors_by_kind[error] = self.errors_by_kind.get(error, 0) + 1
        if len(self.samples) < MAX_ERROR_SAMPLES:
            self.samples.append(f"#{index} {error}: {detail}")


def _job_id(body: bytes, name: str) -> str:
    try:
        value = json.loads(body).get(name)
    except (ValueError, AttributeError):
        return ""  # not a JSON object: the answer is still a success, it just names no job
    return value if isinstance(value, str) else ""


def _payloads(spec: OpenLoopSpec, host: str) -> tuple[bytes, list[bytes]]:
    """The request head (without Content-Length) and the body split at the index marker."""
    headers = {"Host": host, **({"Content-Type": "application/json"} if spec.body else {}), **spec.headers}
    head = f"{spec.method} {spec.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode("latin-1"), spec.body.encode().split(spec.index_marker.encode())


class _Dispatcher:
    """Sends each request at its intended time from plain timer callbacks.

    One loop timer per wake-up and no task, future or coroutine frame: at low rates every request costs
    its own wake-up, and on a shared or virtualised machine the cost of a wake-up is dominated by how much
    memory it touches (caches and TLB are cold after another process ran), so the less it touches the
    better. Whatever fell due while the loop was busy is sent in one go (a batch per tick) and timed as
    late from its intended moment.
    """

    def __init__(self, pool: WirePool, rec: _Recorder, spec: OpenLoopSpec, stop: asyncio.Event) -> None:
        url = urlsplit(spec.base_url)
        self._head, self._pieces = _payloads(spec, url.netloc)
        pieces = self._pieces
        self._fixed = (
            self._head + b"Content-Length: %d\r\n\r\n" % len(pieces[0]) + pieces[0]
            if len(pieces) == 1
            else b""
        )
        self._pool, self._rec, self._stop = pool, rec, stop
        self._loop = asyncio.get_running_loop()
        self.done: asyncio.Future[int] = self._loop.create_future()
        self.next = 0

    def start(self) -> None:
        self._loop.call_later(_whole_ms(self._rec.start - time.perf_counter()), self.tick)

    def tick(self) -> None:
        rec, pool, offsets, i = self._rec, self._pool, self._rec.intended, self.next
        n, now = len(offsets), time.perf_counter() - rec.start
        if self._stop.is_set():
            n = i  # stop: what was due has been sent, nothing more falls due
        while i < n and offsets[i] <= now:
            if not pool.send(i, self._fixed or self._payload(i)):
                rec.late += 1
            i += 1
        self.next = i
        if i < n:
            self._loop.call_later(_whole_ms(offsets[i] - (time.perf_counter() - rec.start)), self.tick)
        elif not self.done.done():
            self.done.set_result(i)

    def _payload(self, index: int) -> bytes:
        body = str(index).encode().join(self._pieces)
        return self._head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def _whole_ms(delay_s: float) -> float:
    """Round a wait up to whole milliseconds, the resolution of uvloop's (libuv's) timers.

    uvloop rounds a timer to the nearest millisecond, so a shorter wait fires early, finds nothing due
    and waits again: the loop spins until the request is due. Rounding up wakes it once, on time or at
    most a millisecond late, and a late send is still timed from its intended moment.
    """
    return math.ceil(delay_s * 1000.0 - 1e-6) / 1000.0 if delay_s > 0 else 0.0


async def _generate(spec: OpenLoopSpec, stop: asyncio.Event) -> dict[str, Any]:
    rec = _Recorder(spec, schedule(spec))
    url = urlsplit(spec.base_url)
    pool = WirePool(
        url.hostname or "127.0.0.1",
        url.port or 80,
        rec,
        max_connections=spec.max_connections,
        timeout_s=spec.timeout_s,
        clock=time.perf_counter,
    )
    await pool.warm(spec.warm_connections)
    cpu_before, switches_before = _cpu_s(), _switches()
    rec.start = time.perf_counter() + LEAD_S
    sweeper = asyncio.get_running_loop().create_task(_sweep(pool, spec.timeout_s))
    dispatcher = _Dispatcher(pool, rec, spec, stop)
    # A stop that arrives between two sends takes effect at once, not at the next intended send.
    stop_watch = asyncio.get_running_loop().create_task(stop.wait())
    stop_watch.add_done_callback(lambda _: dispatcher.tick())
    dispatcher.start()
    planned = await dispatcher.done
    stop_watch.cancel()
    await pool.idle()  # the last answers (or their timeouts): woken by the pool, no polling
    elapsed = time.perf_counter() - rec.start
    cpu, wakeups = _cpu_s() - cpu_before, _switches() - switches_before
    sweeper.cancel()
    pool.close()
    errors = sum(rec.errors_by_kind.values())
    sent = planned - rec.late
    return {
        "planned": planned,
        "sent": sent,
        "ok": rec.ok,
        "errors": errors,
        "late": rec.late,
        "errors_by_kind": rec.errors_by_kind,
        "error_samples": rec.samples,
        "cpu_s": cpu,
        "cpu_us_per_request": cpu * 1e6 / sent if sent else 0.0,
        "elapsed_s": elapsed,
        "wakeups": wakeups,
        "connections_opened": pool.opened,
        "most_connections": pool.most_open,
        "columns": _encode_columns(rec, planned),
    }


async def _sweep(pool: WirePool, timeout_s: float) -> None:
    # A quarter of the timeout: a request is failed within 1.25 x timeout_s of its send, and at the
    # default timeout the sweep wakes the loop a few times a minute, not once per request.
    while True:
        await asyncio.sleep(timeout_s / 4)
        pool.sweep()


def _encode_columns(rec: _Recorder, n: int) -> dict[str, Any]:
    columns: dict[str, Any] = {"job_ids": rec.job_ids[:n]}
    for name, column in (
        ("intended_s", rec.intended),
        ("sent_s", rec.sent_s),
        ("latency_s", rec.latency_s),
        ("status", rec.status),
    ):
        columns[name] = base64.b64encode(column[:n].tobytes()).decode("ascii")
    return columns


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _switches() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw


def _place(pin: bool) -> dict[str, Any]:
    """Pin to the last allowed core when asked and there are at least 3 (1 for us, 2+ for the rest)."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin:
        return {"pinned": False, "cpus": cpus, "reason": "not requested"}
    if len(cpus) < 3:
        return {"pinned": False, "cpus": cpus, "reason": f"only {len(cpus)} cores: pinning would starve"}
    os.sched_setaffinity(0, {cpus[-1]})
    return {"pinned": True, "cpus": [cpus[-1]], "reason": f"core {cpus[-1]} of {len(cpus)}"}


def _read_spec(fd: int) -> tuple[OpenLoopSpec, bytes]:
    """Read the first line of ``fd`` unbuffered; return the spec and whatever followed it."""
    data = b""
    while b"\n" not in data:
        chunk = os.read(fd, 65536)
        if not chunk:
            raise SystemExit("open-loop generator: no spec on stdin")
        data += chunk
    line, _, rest = data.partition(b"\n")
    return OpenLoopSpec(**json.loads(line)), rest


def _child_main() -> int:
    startup_cpu = _cpu_s()
    spec, rest = _read_spec(sys.stdin.fileno())
    placement = _place(spec.pin_cpu)
    loop_name = "asyncio"
    if spec.use_uvloop:
        try:
            import uvloop  # optional: the generator works without it, only dearer

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
            loop_name = "uvloop"
        except ImportError:
            pass

    async def main() -> dict[str, Any]:
        stop = asyncio.Event()
        if rest:
            stop.set()
        loop, fd = asyncio.get_running_loop(), sys.stdin.fileno()

        def on_input() -> None:  # a stop line or EOF: either way, once is enough
            loop.remove_reader(fd)
            stop.set()

        loop.add_reader(fd, on_input)
        return await _generate(spec, stop)

    doc = asyncio.run(main())
    doc.update(startup_cpu_s=startup_cpu, placement=placement, loop=loop_name)
    _write_all(sys.stdout.fileno(), json.dumps(doc).encode())
    return 0


def _write_all(fd: int, data: bytes) -> None:
    """Write the whole result even if stdout was left non-blocking.

    The event loop switches the stdin it watches to non-blocking mode, and stdout can share that open
    file (a terminal, a socket) or be switched by the loop too; a buffered write then stops with EAGAIN
    at the pipe's capacity and the parent reads a cut-off document. Blocking writes in a loop cannot.
    """
    os.set_blocking(fd, True)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


if __name__ == "__main__":
    raise SystemExit(_child_main())
