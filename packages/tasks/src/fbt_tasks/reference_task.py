"""The fidelity reference's task: what a minimal worker of each library runs instead of the project's code.

A library's own minimal worker (``fbt_<runner>.reference``) calls ``complete`` from its task: it appends one
log line and one completion line in the ledger's format, the two appends the project's ``write_log`` job
makes, so the harness counts both with one ledger reader. Standard library only, and nothing of this
package is imported with it (``fbt_tasks/__init__.py`` imports nothing): the reference's worker path holds
no project code but these few lines.
"""

import argparse
import json
import os
import time

# Where the reference worker and its enqueue script read their inputs (the harness sets them).
LOG_FILE_ENV = "FBT_REF_LOG_FILE"
LEDGER_FILE_ENV = "FBT_REF_LEDGER_FILE"
BROKER_URL_ENV = "FBT_REF_BROKER_URL"
REDIS_URL_ENV = "FBT_REF_REDIS_URL"
# The library options of the queue config in force, as JSON: the worker applies them with its library.
OPTIONS_ENV = "FBT_REF_OPTIONS"
QUEUE_ENV = "FBT_REF_QUEUE"

_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT
# One encoder for every line, as the project's ledger keeps one (json.dumps with arguments builds one per call).
_to_json = json.JSONEncoder(separators=(",", ":")).encode


def _append(path: str, data: bytes) -> None:
    # One write on an O_APPEND descriptor, opened per call: exactly what fbt_tasks.lines does per line.
    fd = os.open(path, _APPEND, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def complete(job_id: str, message: str, enqueued_at: float) -> None:
    """Append ``message`` to the log and one ok completion event for ``job_id`` to the ledger."""
    started = time.time()
    _append(os.environ[LOG_FILE_ENV], message.encode() + b"\n")
    event = {
        "id": job_id,
        "kind": "write_log",
        "enqueued_at": enqueued_at,
        "started_at": started,
        "finished_at": time.time(),
        "pid": os.getpid(),
        "attempt": 1,
        "ok": True,
        "error": None,
        "skipped": False,
    }
    _append(os.environ[LEDGER_FILE_ENV], _to_json(event).encode() + b"\n")


def options() -> dict[str, object]:
    """The queue config's library options the harness passed (empty: the library's defaults)."""
    raw = os.environ.get(OPTIONS_ENV, "")
    loaded = json.loads(raw) if raw else {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{OPTIONS_ENV} must be a JSON object, got {raw[:80]!r}")
    return loaded


def emit(ids: list[str], cpu_s: float, n: int) -> None:
    """The enqueue script's one JSON line on stdout: the ids now queued and the CPU per enqueue."""
    print(json.dumps({"n": n, "ids": ids, "cpu_us_per_enqueue": cpu_s * 1e6 / n if n else 0.0}), flush=True)


def enqueue_count(prog: str, argv: list[str] | None = None) -> int:
    """Parse a reference's command line, ``enqueue --n N`` (what the harness runs), and return N."""
    parser = argparse.ArgumentParser(
        prog=prog, description="enqueue N reference jobs with the library's client"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("enqueue", help="enqueue N jobs as fast as they go").add_argument(
        "--n", type=int, required=True
    )
    n: int = parser.parse_args(argv).n
    if n < 1:
        parser.error("--n must be at least 1")
    return n
