"""The one way to start the SMTP sink as a process: on a free port, with a delay and refusals, stopped on exit.

The stack, the fault pass, the floors and the tests all start it here, so each talks to the same real server
(``fbt_devstack.smtp_sink``) configured the same way.
"""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fbt_devstack.ports import free_port, wait_for_port
from fbt_devstack.processes import ProcessGroup

# Another process may take a free port between our probe and the sink's bind: try a few.
PORT_ATTEMPTS = 3
READY_TIMEOUT_S = 20.0


@dataclass(frozen=True, slots=True)
class Sink:
    host: str
    port: int
    mailbox: Path


def sink_argv(
    port: int, mailbox: Path, delay_ms: int, fail_first: int, always_fail_to: str, host: str = "127.0.0.1"
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "fbt_devstack.smtp_sink",
        f"--host={host}",
        f"--port={port}",
        f"--mailbox={mailbox}",
        f"--delay-ms={delay_ms}",
        f"--fail-first={fail_first}",
        f"--always-fail-to={always_fail_to}",
    ]


def start_sink(
    group: ProcessGroup,
    mailbox: Path,
    log_path: Path,
    *,
    delay_ms: int = 0,
    fail_first: int = 0,
    always_fail_to: str = "",
    name: str = "smtp",
    host: str = "127.0.0.1",
) -> Sink:
    """Spawn the sink as ``name`` in ``group`` and wait until it listens; the group stops it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = free_port()
        group.spawn(
            name,
            sink_argv(port, mailbox, delay_ms, fail_first, always_fail_to, host),
            env=env,
            log_path=log_path,
        )
        try:
            wait_for_port(host, port, timeout_s=READY_TIMEOUT_S)
        except TimeoutError:
            group.stop(name, timeout_s=2)
            if attempt == PORT_ATTEMPTS:
                raise
            continue
        return Sink(host, port, mailbox)
    raise AssertionError("unreachable")


@contextmanager
def smtp_sink(
    workdir: Path,
    *,
    delay_ms: int = 0,
    fail_first: int = 0,
    always_fail_to: str = "",
    host: str = "127.0.0.1",
) -> Iterator[Sink]:
    """A sink of its own on ``host``, recording to ``workdir/mailbox.jsonl``, stopped when the block exits."""
    workdir.mkdir(parents=True, exist_ok=True)
    with ProcessGroup() as group:
        yield start_sink(
            group,
            workdir / "mailbox.jsonl",
            workdir / "logs" / "smtp.log",
            delay_ms=delay_ms,
            fail_first=fail_first,
            always_fail_to=always_fail_to,
            host=host,
        )
