"""The Dramatiq runner end to end: a real Redis, a real SMTP sink, real ``fbt-worker-dramatiq`` processes.

Kept lean, like the other runners' tests (``runner_support``): one worker serves the happy path, the retry
path and the healthcheck; the SIGKILL redelivery, SIGTERM and the 503 path get their own worker or Redis.
"""

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import psutil
import pytest
from fastapi.testclient import TestClient
from runner_support import (
    AUTH,
    SMALL_RESIZE,
    WorkerEnv,
    events_by_id,
    every_kind_until_succeeded,
    is_in_order,
    make_worker_env,
    wait_until,
)
from runner_support import running_worker as start_worker

from fbt_api.app import create_app
from fbt_devstack.processes import is_alive, kill_tree
from fbt_devstack.redis_server import RedisServer
from fbt_devstack.smtp_sink import wait_for_mail
from fbt_dramatiq.backend import DramatiqBackend
from fbt_dramatiq.health import worker_ready
from fbt_tasks.backend import BrokerUnavailable
from fbt_tasks.jobs import Job, JobState

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

# Dramatiq puts a SIGKILLed worker's messages back after heartbeat_timeout (10 s in the safe queue config).
REDELIVERY_TIMEOUT_S = 120


def on_db(url: str, db: int) -> str:
    """The session Redis, another database: queues and heartbeats of their own."""
    return f"{url.rsplit('/', 1)[0]}/{db}"


def make_env(tmp: Path, redis_url: str, smtp: tuple[int, Path]) -> WorkerEnv:
    # One process x two threads: two slots keep the load small on a shared 2-core machine.
    return make_worker_env("dramatiq", tmp, redis_url, smtp, WORKER_PROCESSES="1", WORKER_THREADS="2")


def running_worker(worker_env: WorkerEnv) -> AbstractContextManager[subprocess.Popen[bytes]]:
    return start_worker(worker_env, worker_ready, "a Dramatiq worker heartbeat", timeout_s=60)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, smtp_sink: tuple[int, Path]
) -> Iterator[WorkerEnv]:
    """One worker, safe queue config, on database 4 of the session Redis (other runners use 0-3)."""
    built = make_env(tmp_path_factory.mktemp("dramatiq"), on_db(redis_server.url, 4), smtp_sink)
    with running_worker(built):
        yield built


def test_every_kind_runs_and_its_state_progresses_to_succeeded(stack: WorkerEnv) -> None:
    with TestClient(create_app(stack.settings)) as client:
        ids, seen = every_kind_until_succeeded(client, "dramatiq")

    assert all(is_in_order(states, ["queued", "started", "succeeded"]) for states in seen.values()), seen
    events = events_by_id(stack)
    for kind, job_id in ids.items():
        assert [(e.kind, e.ok, e.attempt) for e in events[job_id]] == [(kind, True, 1)]
    mails = wait_for_mail(stack.mailbox, 1, timeout_s=10)
    assert f"<{ids['send_email']}@fbt.localhost>" in {m.message_id for m in mails}


def test_a_permanently_failing_job_is_not_retried(stack: WorkerEnv) -> None:
    backend = DramatiqBackend(stack.settings)
    try:
        job = Job(kind="write_log", payload={"unexpected": "argument"})
        backend.enqueue(job, None)  # type: ignore[arg-type]  # ignored by broker runners
        wait_until(lambda: backend.status(job.id) == JobState.failed, 60, "the job to fail for good")
    finally:
        backend.close()
    events = events_by_id(stack)[job.id]
    # A TypeError fails the same way every time: the safe queue config retries only transient errors
    # (fbt_tasks.retry), so the one attempt is final.
    assert [(e.attempt, e.ok) for e in events] == [(1, False)]
    assert events[0].error is not None and "TypeError" in events[0].error


def test_healthcheck_modules_see_the_worker(stack: WorkerEnv) -> None:
    for module in ("fbt_dramatiq.health", "fbt_tasks.health"):
        check = subprocess.run(
            [sys.executable, "-m", module], env=stack.env, capture_output=True, timeout=30, check=False
        )
        assert check.returncode == 0, (module, check.stdout + check.stderr)


def test_sigkilled_worker_job_is_redelivered(
    tmp_path: Path, redis_server: RedisServer, smtp_sink: tuple[int, Path]
) -> None:
    # Database 5 has its own queues and heartbeats, so the module's worker cannot take the job.
    isolated = make_env(tmp_path, on_db(redis_server.url, 5), smtp_sink)
    backend = DramatiqBackend(isolated.settings)
    # Big enough to still be running when the kill lands a few polls after it started.
    job = Job(
        kind="resize_image", payload={**SMALL_RESIZE, "width": 6000, "height": 4000, "output": "big.jpg"}
    )
    try:
        with running_worker(isolated) as victim:
            victim_pids = {victim.pid, *(c.pid for c in psutil.Process(victim.pid).children(recursive=True))}
            backend.enqueue(job, None)  # type: ignore[arg-type]
            wait_until(lambda: backend.status(job.id) == JobState.started, 60, "the job to start", victim)
            kill_tree(victim.pid, signal.SIGKILL)
            victim.wait(timeout=10)
        assert job.id not in events_by_id(isolated), "the job finished before the kill; nothing was tested"
        killed_at = time.monotonic()
        with running_worker(isolated):
            wait_until(
                lambda: backend.status(job.id) == JobState.succeeded, REDELIVERY_TIMEOUT_S, "the redelivery"
            )
        print(f"redelivered and finished {time.monotonic() - killed_at:.1f} s after the SIGKILL")
    finally:
        backend.close()
    [event] = events_by_id(isolated)[job.id]
    assert event.ok and event.pid not in victim_pids


def test_sigterm_stops_the_worker_cleanly(
    tmp_path: Path, redis_server: RedisServer, smtp_sink: tuple[int, Path]
) -> None:
    own = make_env(tmp_path, on_db(redis_server.url, 6), smtp_sink)
    with running_worker(own) as worker:
        tree = [psutil.Process(worker.pid), *psutil.Process(worker.pid).children(recursive=True)]
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        assert not [p.pid for p in tree if is_alive(p)]
    # A clean shutdown marks the worker's heartbeat dead, so the healthcheck notices at once.
    assert not worker_ready(own.settings)


def test_broker_down_gives_503_and_bad_health(tmp_path: Path, smtp_sink: tuple[int, Path]) -> None:
    with RedisServer(workdir=tmp_path / "redis") as server:
        down = make_env(tmp_path, server.url, smtp_sink)
        with TestClient(create_app(down.settings)) as client:
            assert client.post("/log/?msg=up", headers=AUTH).status_code == 200
            server.stop()
            response = client.post("/log/?msg=down", headers=AUTH)
            assert response.status_code == 503
            assert response.json()["detail"].startswith("Broker unavailable, nothing was enqueued")
            health = client.get("/health")
            assert health.status_code == 503 and health.json()["broker"] == "down"
            with pytest.raises(BrokerUnavailable):
                client.app.state.backend.enqueue(Job(kind="notify", payload={"user": "x"}), None)
            assert not worker_ready(down.settings)
            server.start()
            assert client.post("/log/?msg=back", headers=AUTH).status_code == 200
