"""Helpers shared by the per-runner tests: a worker environment, a worker process, and ledger reading."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient

from fbt_bench.faults.model import FaultParams
from fbt_devstack.processes import kill_tree
from fbt_tasks import ledger
from fbt_tasks.runner import load_runner
from fbt_tasks.settings import Settings

KEY = "test-key-not-a-secret"
AUTH = {"X-API-Key": KEY}


@dataclass
class WorkerEnv:
    """The environment a runner's worker and the test's API share (not a devstack Stack: nothing is started)."""

    settings: Settings
    env: dict[str, str]
    dir: Path
    mailbox: Path

    @property
    def ledger_file(self) -> Path:
        return self.dir / "ledger.jsonl"


def make_worker_env(
    backend: str, tmp: Path, redis_url: str, smtp: tuple[int, Path], **extra: str
) -> WorkerEnv:
    port, mailbox = smtp
    env = {
        "BACKEND": backend,
        "REDIS_URL": redis_url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),
        "LOG_FILE": str(tmp / "log.txt"),
        "LEDGER_FILE": str(tmp / "ledger.jsonl"),
        "MEDIA_DIR": str(tmp / "media"),
        "API_KEY": KEY,
        "WORKER_PROCESSES": "2",
        "WORKER_THREADS": "1",
        "QUEUE_CONFIG": "safe",
        **extra,
    }
    settings = Settings(**{key.lower(): value for key, value in env.items()})
    return WorkerEnv(settings, env, tmp, mailbox)


@contextmanager
def running_worker(
    worker_env: WorkerEnv, ready: Callable[[Settings], bool], what: str, timeout_s: float = 60
) -> Iterator[subprocess.Popen[bytes]]:
    """Start the runner's worker command; on exit SIGTERM it, and SIGKILL its whole tree if anything is left."""
    command = load_runner(worker_env.settings.backend).worker_command(worker_env.settings)
    assert command is not None, f"{worker_env.settings.backend} has no worker"
    script = str(Path(sys.executable).parent / command[0])
    with open(worker_env.dir / "worker.log", "ab") as log:
        proc = subprocess.Popen(
            [script, *command[1:]],
            env={**os.environ, **worker_env.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: ready(worker_env.settings), timeout_s, what, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        kill_tree(proc.pid)
        proc.wait(timeout=10)


def wait_until(
    condition: Callable[[], bool], timeout_s: float, what: str, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"worker exited with {proc.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.05)


def events_by_id(worker_env: WorkerEnv) -> dict[str, list[ledger.CompletionEvent]]:
    found: dict[str, list[ledger.CompletionEvent]] = {}
    for event in ledger.read_events(worker_env.ledger_file):
        found.setdefault(event.id, []).append(event)
    return found


def is_in_order(seen: list[str], order: list[str]) -> bool:
    """True if the distinct states seen never go backwards in ``order``."""
    ranks = [order.index(state) for state in seen]
    return ranks == sorted(ranks)


SMALL_RESIZE = {"width": 64, "height": 64, "target_width": 8, "target_height": 8}


def every_kind_until_succeeded(
    client: TestClient, backend: str
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Submit one job of each kind through the API and poll ``/jobs`` until all succeed.

    Returns the job id per kind and the distinct states each job was seen in, in order.
    """
    responses = {
        "write_log": client.post(f"/log/?msg=hello from {backend}", headers=AUTH),
        "send_email": client.post(f"/send-mail/?email={backend}@example.com", headers=AUTH),
        "notify": client.post("/notify/", headers=AUTH),
        "resize_image": client.post("/resize", json=SMALL_RESIZE, headers=AUTH),
    }
    assert {r.status_code for r in responses.values()} == {200}
    assert {r.json()["backend"] for r in responses.values()} == {backend}
    ids = {kind: r.json()["job_id"] for kind, r in responses.items()}
    seen: dict[str, list[str]] = {job_id: [] for job_id in ids.values()}

    def all_succeeded() -> bool:
        for job_id, states in seen.items():
            state = client.get(f"/jobs/{job_id}", headers=AUTH).json()["state"]
            if not states or states[-1] != state:
                states.append(state)
        return all(states[-1] == "succeeded" for states in seen.values())

    wait_until(all_succeeded, 60, "every job to succeed")
    assert client.get("/health").json() == {"status": "ok", "backend": backend, "broker": "up"}
    return ids, seen


def assert_each_kind_ran_once(worker_env: WorkerEnv, ids: dict[str, str], seen: dict[str, list[str]]) -> None:
    """What ``every_kind_until_succeeded`` returned: states never went backwards, one ok attempt per kind."""
    assert all(is_in_order(states, ["queued", "started", "succeeded"]) for states in seen.values()), seen
    events = events_by_id(worker_env)
    for kind, job_id in ids.items():
        assert [(e.kind, e.ok, e.attempt) for e in events[job_id]] == [(kind, True, 1)]


# The kill-worker cell the exactly-once tests run (Redis and RabbitMQ alike): one slot and a 300 ms sink, so
# the kill lands inside a send by construction (Redis and RabbitMQ alike).
KILL_MID_SEND = FaultParams(
    n=30,
    fault_after=8,
    smtp_delay_ms=300,
    worker_processes=1,
    worker_threads=1,
    burst_concurrency=2,
    # The send-once lease is 2 x SMTP_TIMEOUT_S + 5 s: a redelivered email waits it out, so keep it short.
    smtp_timeout_s=3.0,
    # Only the broker runners run here; their API needs no more threads than the load sends at once.
    api_threadpool=4,
    trials=1,
)
