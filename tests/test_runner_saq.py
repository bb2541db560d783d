"""The SAQ runner end to end: a real Redis, the real ``fbt-worker-saq`` process tree, a real SMTP sink.

One worker (databases 10 and 11 of the session Redis, which no other module uses) serves the happy path and
the retry paths; SIGTERM, the 503 path and the kill-mid-send cell get their own worker, Redis or stack.
"""

import json
from pathlib import Path

import pytest
import redis
from runner_support import (
    KILL_MID_SEND,
    MISSING_UPLOAD,
    OWN_DB,
    BrokerRunner,
    WorkerEnv,
    assert_every_email_once,
    assert_failed_once,
    assert_retried_then_failed,
    events_by_id,
    every_kind_runs_once,
    module_worker,
    on_db,
    sigterm_and_wait,
    slow_resize,
    wait_until,
)

from fbt_bench.faults.model import Cell
from fbt_bench.faults.run import run_cell
from fbt_devstack.redis_server import RedisServer
from fbt_saq.backend import SAQBackend
from fbt_saq.wire import enqueue_script_is_saqs, job_id
from fbt_saq.worker_settings import worker_settings
from fbt_tasks.jobs import Job, JobState
from fbt_tasks.registry import configure
from fbt_tasks.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

# Two SAQ processes (make_worker_env's sizing), one job at a time each.
RUNNER = BrokerRunner("saq", ready_timeout_s=90)
stack = module_worker(RUNNER)


def test_the_enqueue_script_is_the_installed_saqs() -> None:
    assert enqueue_script_is_saqs()


def test_worker_settings_spend_the_slots_and_the_queue_config() -> None:
    safe = worker_settings(configure(Settings(backend="saq", worker_processes=2, worker_threads=4)))
    assert safe["concurrency"] == 4 and safe["queue"].name == "fbt"
    assert safe["timers"] == {"sweep": 5, "schedule": 1, "worker_info": 5}
    assert safe["shutdown_grace_period_s"] == 60 and safe["dequeue_timeout"] == 1.0
    defaults = worker_settings(configure(Settings(backend="saq", queue_config="defaults")))
    assert defaults["timers"] == {"sweep": 60, "schedule": 1, "worker_info": 10}
    assert defaults["shutdown_grace_period_s"] is None and defaults["dequeue_timeout"] == 0.0


def test_every_kind_runs_and_its_state_progresses_to_succeeded(stack: WorkerEnv) -> None:
    ids = every_kind_runs_once(stack)
    # JSON on the wire, never pickle: SAQ's job record is a JSON object naming our job function.
    raw = redis.Redis.from_url(stack.settings.redis_url).get(job_id(ids["write_log"]))
    assert raw is not None
    stored = json.loads(raw)
    assert stored["function"] == "fbt.write_log" and stored["status"] == "complete"
    assert stored["kwargs"]["message"]["payload"] == {"message": "hello from saq"}


def test_a_transient_error_is_retried_then_failed_and_a_permanent_one_fails_at_once(stack: WorkerEnv) -> None:
    backend = SAQBackend(stack.settings)
    transient = Job(kind="resize_image", payload=MISSING_UPLOAD)
    # TypeError: fails the same way on every attempt.
    permanent = Job(kind="write_log", payload={"not_an_argument": "x"})
    try:
        backend.enqueue(transient)
        backend.enqueue(permanent)
        for job in (transient, permanent):
            wait_until(lambda j=job: backend.status(j.id) == JobState.failed, 60, "the job to fail for good")
    finally:
        backend.close()
    events = events_by_id(stack)
    # Safe queue config: 3 attempts (SAQ's retries), 1 s apart.
    assert_retried_then_failed(events[transient.id])
    assert_failed_once(events[permanent.id])


def test_a_delayed_job_waits_then_runs(stack: WorkerEnv) -> None:
    backend = SAQBackend(stack.settings)
    job = Job(kind="write_log", payload={"message": "later"})
    try:
        backend.enqueue(job, delay_s=2.0)
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
    own = RUNNER.env(tmp_path, on_db(redis_server.url, OWN_DB), smtp_sink)
    backend = SAQBackend(own.settings)
    slow = slow_resize()
    try:
        with RUNNER.worker(own) as worker:
            backend.enqueue(slow)
            wait_until(
                lambda: backend.status(slow.id) == JobState.started, 60, "the slow job to start", worker
            )
            tree = sigterm_and_wait(worker)
            assert len(tree) >= 3  # the supervisor and its two saq processes
        assert backend.status(slow.id) == JobState.succeeded
        assert [e.ok for e in events_by_id(own)[slow.id]] == [True]
    finally:
        backend.close()


def test_broker_down_gives_503_and_bad_health(tmp_path: Path, smtp_sink: tuple[int, Path]) -> None:
    RUNNER.broker_down(tmp_path, smtp_sink)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkilled_worker_delivers_every_email_exactly_once(tmp_path: Path) -> None:
    """test_faults.py's exactly-once cell for SAQ: the kill lands mid-send, the sweep brings the job back."""
    assert_every_email_once(run_cell(Cell("saq", "safe", "kill-worker"), KILL_MID_SEND, tmp_path))
