"""The arq runner end to end: a real Redis, the real ``fbt-worker-arq`` process tree, a real SMTP sink.

Kept lean, like the other runners' tests (``runner_support``): one worker serves the happy path and the retry
paths; SIGTERM and the 503 path get their own worker or Redis; the SIGKILL cell is the fault harness's
kill-mid-send cell (runner_support.KILL_MID_SEND), on a stack of its own. Databases 12 and 13 of the
session Redis are arq's (runner_support.BrokerRunner lists every module's).
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
    assert_health_modules_pass,
    assert_retried_then_failed,
    events_by_id,
    every_kind_runs_once,
    module_worker,
    on_db,
    sigterm_and_wait,
    slow_resize,
    wait_until,
)

from fbt_arq.backend import ArqBackend
from fbt_arq.wire import QUEUE_NAME, dumps, job_key, loads, result_key
from fbt_arq.worker import SETTINGS_PATH, worker_command
from fbt_arq.worker_settings import worker_settings
from fbt_bench.faults.model import FULL, Cell
from fbt_bench.faults.run import run_cell
from fbt_bench.measuring.environment import describe_runner
from fbt_devstack.redis_server import RedisServer
from fbt_tasks.jobs import Job, JobState
from fbt_tasks.registry import configure, load_runner
from fbt_tasks.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

# One process x two concurrent jobs: two slots keep the load small on a shared 2-core machine.
RUNNER = BrokerRunner("arq", sizing={"WORKER_PROCESSES": "1", "WORKER_THREADS": "2"})
stack = module_worker(RUNNER)


def test_worker_runs_arqs_cli_with_settings_from_the_queue_config() -> None:
    assert SETTINGS_PATH in worker_command(configure(Settings(backend="arq")))
    safe = worker_settings(
        configure(Settings(backend="arq", queue_config="safe", worker_threads=3, smtp_timeout_s=10))
    )
    assert (safe["max_jobs"], safe["max_tries"], safe["job_timeout"], safe["job_completion_wait"]) == (
        3,
        3,
        50,
        25,
    )
    assert safe["job_serializer"] is dumps and safe["job_deserializer"] is loads  # never pickle
    assert [f.name for f in safe["functions"]] == [
        "fbt.send_email",
        "fbt.write_log",
        "fbt.notify",
        "fbt.resize_image",
    ]
    # Out of the box: arq's own defaults, read from its Worker signature.
    defaults = worker_settings(configure(Settings(backend="arq", queue_config="defaults")))
    assert (defaults["max_tries"], defaults["job_timeout"], defaults["job_completion_wait"]) == (5, 300, 0)


def test_every_kind_runs_and_its_state_progresses_to_succeeded(stack: WorkerEnv) -> None:
    ids = every_kind_runs_once(stack)
    # JSON on the wire, never pickle: arq's stored result is plain JSON naming our job function.
    raw = redis.Redis.from_url(stack.settings.redis_url).get(result_key(ids["write_log"]))
    assert raw is not None
    stored = json.loads(raw)
    assert stored["f"] == "fbt.write_log" and stored["s"] is True
    assert stored["a"][0]["payload"] == {"message": "hello from arq"}


def test_a_transient_error_is_retried_with_backoff_then_failed(stack: WorkerEnv) -> None:
    backend = ArqBackend(stack.settings)
    job = Job(kind="resize_image", payload=MISSING_UPLOAD)
    try:
        backend.enqueue(job)
        wait_until(lambda: backend.status(job.id) == JobState.failed, 60, "the job to fail for good")
    finally:
        backend.close()
    # Safe queue config: arq's Retry after attempts 1 and 2 (1 s, 2 s), and the third attempt is final.
    assert_retried_then_failed(events_by_id(stack)[job.id])
    stored = loads(redis.Redis.from_url(stack.settings.redis_url).get(result_key(job.id)) or b"{}")
    assert stored["s"] is False and stored["r"].startswith("FileNotFoundError")


def test_a_permanent_error_is_not_retried(stack: WorkerEnv) -> None:
    backend = ArqBackend(stack.settings)
    job = Job(kind="write_log", payload={"unexpected": "argument"})
    try:
        backend.enqueue(job)
        wait_until(lambda: backend.status(job.id) == JobState.failed, 60, "the job to fail")
    finally:
        backend.close()
    assert_failed_once(events_by_id(stack)[job.id])


def test_a_delayed_job_waits_in_the_queue_then_runs(stack: WorkerEnv) -> None:
    backend = ArqBackend(stack.settings)
    job = Job(kind="notify", payload={"user": "later"})
    try:
        backend.enqueue(job, delay_s=2.0)
        client = redis.Redis.from_url(stack.settings.redis_url)
        assert client.zscore(QUEUE_NAME, job.id) is not None and client.exists(job_key(job.id))
        assert backend.status(job.id) == JobState.queued
        wait_until(lambda: backend.status(job.id) == JobState.succeeded, 30, "the delayed job to run")
    finally:
        backend.close()
    [event] = events_by_id(stack)[job.id]
    assert event.ok and event.started_at - event.enqueued_at >= 2.0


def test_healthcheck_modules_see_the_worker(stack: WorkerEnv) -> None:
    assert_health_modules_pass(stack)


def test_sigterm_lets_the_running_job_finish_then_the_worker_exits(
    tmp_path: Path, redis_server: RedisServer, smtp_sink: tuple[int, Path]
) -> None:
    # Database 13: the module's worker listens on database 12 and must not take this job.
    own = RUNNER.env(tmp_path, on_db(redis_server.url, OWN_DB), smtp_sink)
    backend = ArqBackend(own.settings)
    slow = slow_resize()
    try:
        with RUNNER.worker(own) as worker:
            backend.enqueue(slow)
            wait_until(
                lambda: backend.status(slow.id) == JobState.started, 30, "the slow job to start", worker
            )
            sigterm_and_wait(worker)
        # job_completion_wait (safe): the job finished instead of being cancelled and requeued.
        assert backend.status(slow.id) == JobState.succeeded
        assert [e.ok for e in events_by_id(own)[slow.id]] == [True]
        # A clean shutdown deletes arq's health-check key, so the healthcheck turns unhealthy at once.
        assert not RUNNER.ready(own)
    finally:
        backend.close()


def test_broker_down_gives_503_and_bad_health(tmp_path: Path, smtp_sink: tuple[int, Path]) -> None:
    RUNNER.broker_down(tmp_path, smtp_sink)


def test_safe_configuration_redelivers_within_a_run_and_defaults_do_not() -> None:
    bound = load_runner("arq").faults.redelivery_bound_s
    safe = bound(describe_runner(configure(Settings(backend="arq", queue_config="safe"))))
    defaults = bound(describe_runner(configure(Settings(backend="arq", queue_config="defaults"))))
    assert safe is not None and 0 < safe <= FULL.patience_s
    assert defaults is not None and defaults > FULL.patience_s


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkilled_worker_delivers_every_email_exactly_once(tmp_path: Path) -> None:
    """The fault harness's kill-mid-send cell: SIGKILL the worker tree mid-send, start it again."""
    run = run_cell(Cell("arq", "safe", "kill-worker"), KILL_MID_SEND, tmp_path)
    # arq brings the cut-off job back once its in-progress key expires.
    assert_every_email_once(run)
    assert run.record["mechanism"], run.record
