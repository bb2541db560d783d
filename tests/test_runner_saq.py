"""The SAQ runner end to end: a real Redis, the real ``fbt-worker-saq`` process tree, a real SMTP sink.

One worker (databases 10 and 11 of the session Redis, which no other module uses) serves the happy path and
the retry paths; SIGTERM, the 503 path and the kill-mid-send cell get their own worker, Redis or stack.
"""

import json
import signal
import subprocess
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import psutil
import pytest
import redis
from fastapi.testclient import TestClient
from runner_support import (
    AUTH,
    KILL_MID_SEND,
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
from fbt_bench.faults.model import Cell
from fbt_bench.faults.observe import deliveries
from fbt_bench.faults.run import run_cell
from fbt_devstack.processes import is_alive
from fbt_devstack.redis_server import RedisServer
from fbt_devstack.smtp_sink import wait_for_mail
from fbt_saq.backend import SAQBackend
from fbt_saq.health import worker_ready
from fbt_saq.wire import enqueue_script_is_saqs, job_id
from fbt_saq.worker_settings import worker_settings
from fbt_tasks.backend import BrokerUnavailable
from fbt_tasks.jobs import Job, JobState
from fbt_tasks.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def on_db(url: str, db: int) -> str:
    return f"{url.rsplit('/', 1)[0]}/{db}"


def make_env(tmp: Path, redis_url: str, smtp: tuple[int, Path], **extra: str) -> WorkerEnv:
    return make_worker_env("saq", tmp, redis_url, smtp, **extra)


def running_worker(worker_env: WorkerEnv) -> AbstractContextManager[subprocess.Popen[bytes]]:
    return start_worker(worker_env, worker_ready, "a SAQ worker to register", timeout_s=90)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, smtp_sink: tuple[int, Path]
) -> Iterator[WorkerEnv]:
    """One 2-process SAQ worker (safe queue config, 1 job at a time each) on database 10."""
    built = make_env(tmp_path_factory.mktemp("saq"), on_db(redis_server.url, 10), smtp_sink)
    with running_worker(built):
        yield built


def test_the_enqueue_script_is_the_installed_saqs() -> None:
    assert enqueue_script_is_saqs()


def test_worker_settings_spend_the_slots_and_the_queue_config() -> None:
    safe = worker_settings(Settings(backend="saq", worker_processes=2, worker_threads=4))
    assert safe["concurrency"] == 4 and safe["queue"].name == "fbt"
    assert safe["timers"] == {"sweep": 5, "schedule": 1, "worker_info": 5}
    assert safe["shutdown_grace_period_s"] == 60 and safe["dequeue_timeout"] == 1.0
    defaults = worker_settings(Settings(backend="saq", queue_config="defaults"))
    assert defaults["timers"] == {"sweep": 60, "schedule": 1, "worker_info": 10}
    assert defaults["shutdown_grace_period_s"] is None and defaults["dequeue_timeout"] == 0.0


def test_every_kind_runs_and_its_state_progresses_to_succeeded(stack: WorkerEnv) -> None:
    with TestClient(create_app(stack.settings)) as client:
        ids, seen = every_kind_until_succeeded(client, "saq")

    order = ["queued", "started", "succeeded"]
    assert all(is_in_order(states, order) for states in seen.values()), seen
    events = events_by_id(stack)
    for kind, id_ in ids.items():
        assert [(e.kind, e.ok, e.attempt) for e in events[id_]] == [(kind, True, 1)]
    mails = wait_for_mail(stack.mailbox, 1, timeout_s=10)
    assert f"<{ids['send_email']}@fbt.localhost>" in {m.message_id for m in mails}
    # JSON on the wire, never pickle: SAQ's job record is a JSON object naming our job function.
    raw = redis.Redis.from_url(stack.settings.redis_url).get(job_id(ids["write_log"]))
    assert raw is not None
    stored = json.loads(raw)
    assert stored["function"] == "fbt.write_log" and stored["status"] == "complete"
    assert stored["kwargs"]["message"]["payload"] == {"message": "hello from saq"}


def test_a_transient_error_is_retried_then_failed_and_a_permanent_one_fails_at_once(stack: WorkerEnv) -> None:
    backend = SAQBackend(stack.settings)
    missing = {"source": "no-such-upload.png", "target_width": 8, "target_height": 8, "output": "x.jpg"}
    transient = Job(kind="resize_image", payload=missing)  # FileNotFoundError: an OSError, worth retrying
    # TypeError: fails the same way on every attempt.
    permanent = Job(kind="write_log", payload={"not_an_argument": "x"})
    try:
        backend.enqueue(transient, None)
        backend.enqueue(permanent, None)
        for job in (transient, permanent):
            wait_until(lambda j=job: backend.status(j.id) == JobState.failed, 60, "the job to fail for good")
    finally:
        backend.close()
    events = events_by_id(stack)
    # Safe queue config: 3 attempts (SAQ's retries), 1 s apart.
    assert [(e.attempt, e.ok) for e in events[transient.id]] == [(1, False), (2, False), (3, False)]
    assert all(e.error and e.error.startswith("FileNotFoundError") for e in events[transient.id])
    assert [(e.attempt, e.ok) for e in events[permanent.id]] == [(1, False)]


def test_a_delayed_job_waits_then_runs(stack: WorkerEnv) -> None:
    backend = SAQBackend(stack.settings)
    job = Job(kind="write_log", payload={"message": "later"})
    try:
        backend.enqueue(job, None, delay_s=2.0)
        assert backend.status(job.id) == JobState.queued
        wait_until(lambda: backend.status(job.id) == JobState.succeeded, 30, "the delayed job to run")
    finally:
        backend.close()
    [event] = events_by_id(stack)[job.id]
    assert event.started_at >= job.enqueued_at + 2.0 - 1.0  # SAQ schedules in whole seconds, rounded up


def test_sigterm_lets_the_running_job_finish_then_every_worker_exits(
    tmp_path: Path, redis_server: RedisServer, smtp_sink: tuple[int, Path]
) -> None:
    """Two processes go through fbt-worker-saq's supervisor, which forwards SIGTERM to each `saq`."""
    own = make_env(tmp_path, on_db(redis_server.url, 11), smtp_sink)
    backend = SAQBackend(own.settings)
    # About a second of CPU: long enough to still be running when SIGTERM arrives.
    slow = Job(
        kind="resize_image", payload={**SMALL_RESIZE, "width": 6000, "height": 4000, "output": "slow.jpg"}
    )
    try:
        with running_worker(own) as worker:
            backend.enqueue(slow, None)
            wait_until(
                lambda: backend.status(slow.id) == JobState.started, 60, "the slow job to start", worker
            )
            root = psutil.Process(worker.pid)
            tree = [root, *root.children(recursive=True)]
            assert len(tree) >= 3  # the supervisor and its two saq processes
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=60) == 0
            assert not [p.pid for p in tree if is_alive(p)]
        assert backend.status(slow.id) == JobState.succeeded
        assert [e.ok for e in events_by_id(own)[slow.id]] == [True]
    finally:
        backend.close()


def test_broker_down_gives_503_and_bad_health(tmp_path: Path, smtp_sink: tuple[int, Path]) -> None:
    with RedisServer(workdir=tmp_path / "redis") as server:
        down = make_env(tmp_path, server.url, smtp_sink)
        with TestClient(create_app(down.settings)) as client:
            assert client.post("/log/?msg=up", headers=AUTH).status_code == 200
            server.stop()
            refused = client.post("/log/?msg=down", headers=AUTH)
            assert refused.status_code == 503
            assert refused.json()["detail"].startswith("Broker unavailable, nothing was enqueued")
            assert client.get(f"/jobs/{'0' * 32}", headers=AUTH).status_code == 503
            health = client.get("/health")
            assert health.status_code == 503 and health.json()["broker"] == "down"
            with pytest.raises(BrokerUnavailable):
                client.app.state.backend.enqueue(Job(kind="write_log", payload={"message": "x"}), None)
            assert not worker_ready(down.settings)
            server.start()
            assert client.post("/log/?msg=back", headers=AUTH).status_code == 200


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkilled_worker_delivers_every_email_exactly_once(tmp_path: Path) -> None:
    """test_faults.py's exactly-once cell for SAQ: the kill lands mid-send, the sweep brings the job back."""
    run = run_cell(Cell("saq", "safe", "kill-worker"), KILL_MID_SEND, tmp_path)
    copies = deliveries(run.mailbox)
    assert len(run.accepted) == KILL_MID_SEND.n, run.record["notes"]
    assert run.record["in_flight_at_fault"] >= 1, run.record
    assert (run.record["lost"], run.record["held"], run.record["failed"]) == (0, 0, 0), run.record
    assert run.record["duplicate_effects"] == 0 and run.record["duplicates"] == [], run.record
    assert set(copies) == set(run.accepted) and all(n == 1 for n in copies.values()), copies
    assert run.record["reexecuted"] >= 1, run.record
