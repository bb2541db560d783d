"""Measure the project's own CPU cost per task on its two hot paths (issue #9). Not a test: it prints figures.

    .venv/bin/python scripts/hotpath.py worker [--jobs 2000] [--repeats 7]
    .venv/bin/python scripts/hotpath.py api [--seconds 5] [--repeats 5] [--connections 8]

``worker``: CPU microseconds per ``write_log`` job through ``fbt_tasks.jobs.run_job`` (log line + ledger line),
against a minimal hand-written reference doing the same two appends: one ``os.write`` of the escaped-free log line
and one of a JSON completion line with the ledger's fields, each on its own O_APPEND descriptor opened and closed
per write, as ``fbt_tasks.lines`` does. ``time.process_time`` is used, never wall time, so other processes sharing
the cores do not skew the figure; runs alternate project/reference and the spread (min, median, max) is printed.

``api``: API CPU microseconds per request of ``POST /log/`` (X-API-Key header, JSON body) served by uvicorn
(1 worker, access log off) with a no-op stub backend, against a bare FastAPI sync route of the same shape served
the same way. wrk (``apt-get install wrk``) drives the load from outside; the server's CPU time (user + system,
from psutil) before and after each run, divided by the requests wrk completed, is the figure. Both servers are
measured in alternation, so drift on a shared machine hits both alike.

The stub backend and the app are built directly rather than through ``fbt_tasks.backend.load_backend``: the
figure is the API's own cost, not any runner's enqueue.
"""

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fbt_devstack.ports import free_port

KEY = "hotpath-key-not-a-secret"
MESSAGE = "hotpath: user 42 did a thing"


# --- worker path -------------------------------------------------------------------------------------------


def _reference_job(log_path: str, ledger_path: str, message: dict[str, Any]) -> None:
    """The minimal hand-written task: the two appends run_job makes for write_log, and nothing else."""
    started = time.time()
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    fd = os.open(log_path, flags, 0o644)
    try:
        os.write(fd, message["payload"]["message"].encode() + b"\n")
    finally:
        os.close(fd)
    event = {
        "id": message["id"],
        "kind": message["kind"],
        "enqueued_at": message["enqueued_at"],
        "started_at": started,
        "finished_at": time.time(),
        "pid": os.getpid(),
        "attempt": 1,
        "ok": True,
        "error": None,
    }
    fd = os.open(ledger_path, flags, 0o644)
    try:
        os.write(fd, json.dumps(event, separators=(",", ":")).encode() + b"\n")
    finally:
        os.close(fd)


def _cpu_us_per_job(run: Callable[[dict[str, Any]], Any], messages: list[dict[str, Any]]) -> float:
    start = time.process_time()
    for message in messages:
        run(message)
    return (time.process_time() - start) / len(messages) * 1e6


def worker(jobs: int, repeats: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["LOG_FILE"] = str(work / "var" / "log.txt")
        os.environ["LEDGER_FILE"] = str(work / "var" / "ledger.jsonl")
        from fbt_tasks.jobs import Job, run_job
        from fbt_tasks.settings import get_settings

        get_settings.cache_clear()
        ref_log, ref_ledger = str(work / "ref-log.txt"), str(work / "ref-ledger.jsonl")

        def reference(message: dict[str, Any]) -> None:
            _reference_job(ref_log, ref_ledger, message)

        figures: dict[str, list[float]] = {"run_job": [], "reference": []}
        for _ in range(repeats):
            messages = [Job(kind="write_log", payload={"message": MESSAGE}).to_message() for _ in range(jobs)]
            figures["run_job"].append(_cpu_us_per_job(run_job, messages))
            figures["reference"].append(_cpu_us_per_job(reference, messages))
        lines = (work / "var" / "ledger.jsonl").read_text().splitlines()
        assert len(lines) == jobs * repeats, "every job must have recorded one ledger line"
    return figures


# --- API path ----------------------------------------------------------------------------------------------


def project_app() -> Any:
    """The project's app with a no-op stub backend: what the API itself costs per request."""
    import fbt_api.app
    from fbt_tasks.settings import Settings

    class StubBackend:
        name = "stub"

        def __init__(self, settings: Settings) -> None:
            pass

        def enqueue(self, job: Any, delay_s: float = 0.0) -> None:
            pass

        def status(self, job_id: str) -> None:  # noqa: ARG002 (the Backend protocol's signature)
            return None

        def ping(self) -> bool:
            return True

        def describe(self) -> dict[str, Any]:
            return {}

        def close(self) -> None:
            pass

    settings = Settings(api_key=KEY, access_log=False)
    return fbt_api.app.create_app(settings, backend=StubBackend(settings))  # type: ignore[arg-type]


def bare_app() -> Any:
    """The benchmark's own bare route (``fbt_bench.scenarios.floor_app``): the same shape, one definition."""
    os.environ.update({"FLOOR_MODE": "bare", "API_KEY": KEY})
    from fbt_bench.scenarios.floor_app import create_app

    return create_app()


APPS: dict[str, Callable[[], Any]] = {"project": project_app, "bare": bare_app}


def serve(which: str, port: int) -> None:
    import uvicorn

    uvicorn.run(APPS[which](), host="127.0.0.1", port=port, workers=1, access_log=False, log_level="warning")


def _wait_up(proc: "subprocess.Popen[bytes]", port: int, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server for port {port} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not come up")


WRK_LUA = f"""
wrk.method = "POST"
wrk.body = '{json.dumps({"msg": MESSAGE})}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "{KEY}"
"""


def _wrk(port: int, seconds: int, connections: int, script: str) -> int:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script, f"http://127.0.0.1:{port}/log/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw error responses:\n{out}")
    return int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]


def api(seconds: int, repeats: int, connections: int) -> dict[str, list[float]]:
    import psutil

    figures: dict[str, list[float]] = {name: [] for name in APPS}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(WRK_LUA)
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        for name in APPS:
            port = free_port()
            proc = subprocess.Popen([sys.executable, __file__, "serve", name, "--port", str(port)])
            servers[name] = (proc, port)
        for proc, port in servers.values():
            _wait_up(proc, port)
            _wrk(port, 1, connections, fh.name)  # warm-up: imports, first-request caches
        for _ in range(repeats):
            for name, (proc, port) in servers.items():
                cpu = psutil.Process(proc.pid).cpu_times
                before = cpu().user + cpu().system
                done = _wrk(port, seconds, connections, fh.name)
                figures[name].append((cpu().user + cpu().system - before) / done * 1e6)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=10)
        os.unlink(fh.name)
    return figures


# --- report ------------------------------------------------------------------------------------------------


def _spread(values: list[float]) -> str:
    return f"median {statistics.median(values):7.1f}  min {min(values):7.1f}  max {max(values):7.1f}"


def report(figures: dict[str, list[float]], unit: str, baseline: str) -> None:
    for name, values in figures.items():
        print(f"{name:>10}: {_spread(values)}  {unit}   runs: {', '.join(f'{v:.1f}' for v in values)}")
    base = figures[baseline]
    for name, values in figures.items():
        if name != baseline:
            # Each run is paired with the baseline run next to it, so a busy moment on the machine hits both.
            ratios = [v / b for v, b in zip(values, base, strict=True)]
            print(
                f"{name:>10} / {baseline}: x{statistics.median(values) / statistics.median(base):.2f} (medians);"
                f" paired runs: median x{statistics.median(ratios):.2f}, min x{min(ratios):.2f}, max x{max(ratios):.2f}"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker", help="CPU per write_log job through run_job vs a hand-written reference")
    w.add_argument("--jobs", type=int, default=2000)
    w.add_argument("--repeats", type=int, default=7)
    a = sub.add_parser("api", help="API CPU per POST /log/ under wrk vs a bare FastAPI route")
    a.add_argument("--seconds", type=int, default=5)
    a.add_argument("--repeats", type=int, default=5)
    a.add_argument("--connections", type=int, default=8)
    s = sub.add_parser("serve", help="(internal) serve one of the apps for the api command")
    s.add_argument("which", choices=sorted(APPS))
    s.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.command == "worker":
        report(worker(args.jobs, args.repeats), "CPU us/job", baseline="reference")
    elif args.command == "api":
        report(api(args.seconds, args.repeats, args.connections), "CPU us/request", baseline="bare")
    else:
        serve(args.which, args.port)


if __name__ == "__main__":
    main()
