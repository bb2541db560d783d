"""A TCP relay that holds every chunk a fixed time in each direction: the broker link's delay where the
kernel has no ``sch_netem`` (see ``fbt_devstack.netns``).

It runs in the broker's namespace in front of the broker: clients connect to it, it connects to the broker.
Each chunk read is written to the other side ``delay_ms`` later, in order, so a request/response pays twice
the delay (the round trip) while pipelined traffic keeps flowing. Unlike netem it does not delay the TCP
handshake or individual segments, only the bytes; the record's ``delay_method`` says which one was used.

It can also make the link lossy and jittery on demand (the slow-link fault, on kernels without netem):
SIGUSR1 turns it on, SIGUSR2 off. A TCP application never sees a lost packet, only its retransmission: the
segment, and every byte behind it on that connection, arrives one retransmission timeout late. So while
impaired each chunk is, with probability ``--loss-pct``, held ``--stall-ms`` more (Linux's minimum RTO, 200
ms), and every chunk a uniform 0..``--jitter-ms`` more; a chunk is never released before the one ahead of it,
as TCP delivers in order. This emulates what loss does to the application, not the packets themselves.

``python -m fbt_devstack.delay_proxy --listen HOST:PORT --target HOST:PORT --delay-ms D [--loss-pct P
--jitter-ms J --stall-ms S]``
"""

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fbt_devstack.ports import free_port, wait_for_port
from fbt_devstack.processes import ProcessGroup

if TYPE_CHECKING:  # netns imports nothing of ours; only the type is needed here
    from fbt_devstack.netns import Hosts

CHUNK = 65_536
# Linux's minimum retransmission timeout (TCP_RTO_MIN): what a lost segment costs on a short link.
RTO_MIN_MS = 200.0


class Impairment:
    """Loss and jitter, off until SIGUSR1 and off again at SIGUSR2."""

    def __init__(self, loss_pct: float = 0.0, jitter_ms: float = 0.0, stall_ms: float = RTO_MIN_MS) -> None:
        self.loss, self.jitter_s, self.stall_s = loss_pct / 100.0, jitter_ms / 1000.0, stall_ms / 1000.0
        self.on = False
        self.rng = random.Random()

    def extra_s(self) -> float:
        """The extra hold of one chunk read now."""
        if not self.on:
            return 0.0
        stalled = self.stall_s if self.rng.random() < self.loss else 0.0
        return stalled + self.rng.uniform(0.0, self.jitter_s)


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float, impairment: Impairment
) -> None:
    """Copy reader to writer, each chunk written ``delay_s`` after it was read; close the writer at EOF."""
    held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def release() -> None:
        while True:
            due, data = await held.get()
            if not data:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    releaser = asyncio.create_task(release())
    last_due = 0.0
    try:
        while data := await reader.read(CHUNK):
            # In order, as TCP delivers: a stalled chunk holds back the ones behind it.
            last_due = max(last_due, time.monotonic() + delay_s + impairment.extra_s())
            held.put_nowait((last_due, data))
    except (ConnectionError, OSError):
        pass
    finally:
        held.put_nowait((0.0, b""))
        with contextlib.suppress(ConnectionError, OSError):
            await releaser
        writer.close()


async def _relay(
    client_r: asyncio.StreamReader,
    client_w: asyncio.StreamWriter,
    target: tuple[str, int],
    delay_s: float,
    impairment: Impairment,
) -> None:
    try:
        server_r, server_w = await asyncio.open_connection(*target)
    except OSError:
        client_w.close()
        return
    await asyncio.gather(
        _pump(client_r, server_w, delay_s, impairment), _pump(server_r, client_w, delay_s, impairment)
    )


async def serve(
    listen: tuple[str, int], target: tuple[str, int], delay_ms: float, impairment: Impairment | None = None
) -> None:
    delay_s, impaired = delay_ms / 1000.0, impairment or Impairment()
    server = await asyncio.start_server(lambda r, w: _relay(r, w, target, delay_s, impaired), *listen)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: setattr(impaired, "on", True))
    loop.add_signal_handler(signal.SIGUSR2, lambda: setattr(impaired, "on", False))
    async with server:
        await stop.wait()


def start_in_front(
    group: ProcessGroup,
    hosts: "Hosts",
    target_port: int,
    log_path: Path,
    timeout_s: float,
    name: str = "delay",
    impairment: Impairment | None = None,
) -> str:
    """Spawn the relay as ``name`` on the broker's host in front of Redis on ``target_port``; return the Redis
    URL clients get (the relay's) once it listens. The group stops it."""
    host, port = hosts.address(hosts.broker_role), free_port()
    argv = [*hosts.exec_prefix(hosts.broker_role), sys.executable, "-m", "fbt_devstack.delay_proxy"]
    argv += [
        f"--listen={host}:{port}",
        f"--target={host}:{target_port}",
        f"--delay-ms={hosts.one_way_delay_ms}",
    ]
    if impairment is not None:
        argv += [
            f"--loss-pct={impairment.loss * 100:g}",
            f"--jitter-ms={impairment.jitter_s * 1000:g}",
            f"--stall-ms={impairment.stall_s * 1000:g}",
        ]
    group.spawn(name, argv, env={**os.environ, "PYTHONUNBUFFERED": "1"}, log_path=log_path)
    wait_for_port(host, port, timeout_s=timeout_s)
    return f"redis://{host}:{port}/0"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--listen", required=True, help="HOST:PORT to accept clients on")
    parser.add_argument("--target", required=True, help="HOST:PORT of the server behind it")
    parser.add_argument("--delay-ms", type=float, required=True, help="one-way delay, each direction")
    parser.add_argument("--loss-pct", type=float, default=0.0, help="while impaired: share of chunks stalled")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="while impaired: up to this much more")
    parser.add_argument("--stall-ms", type=float, default=RTO_MIN_MS, help="a stalled chunk's extra hold")
    args = parser.parse_args(argv)
    impairment = Impairment(args.loss_pct, args.jitter_ms, args.stall_ms)
    # The stock event loop, not uvloop: libuv's timers have whole-millisecond resolution and would release a
    # sub-millisecond delay at once; asyncio's selector rounds a wait up, so a chunk is never early.
    asyncio.run(serve(_address(args.listen), _address(args.target), args.delay_ms, impairment))


if __name__ == "__main__":
    main()
