"""The RQ runner end to end: a real Redis, the real ``fbt-worker-rq`` process tree, a real SMTP sink.

Kept lean: one worker serves the happy path and the retry path; SIGTERM and the 503 path get their own
short-lived worker or Redis. The SIGKILL-redelivery trial takes over a minute (RQ's abandoned-job deadline
is heartbeat + 60 s), so it lives in the fault benchmark, not here.
"""

import json
import zlib
from pathlib import Path

import pytest
import redis
from runner_support import (
    MISSING_UPLOAD,
    OWN_DB,
    BrokerRunner,
    WorkerEnv,
    assert_retried_then_failed,
    events_by_id,
    every_kind_runs_once,
    module_worker,
    on_db,
    sigterm_and_wait,
    slow_resize,
    wait_until,
)

from fbt_devstack.redis_server import RedisServer
from fbt_rq.backend import RQBackend
from fbt_rq.settings import get_rq_settings
from fbt_rq.worker import worker_command
from fbt_tasks.jobs import Job, JobState
from fbt_tasks.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

# Two RQ processes (make_worker_env's sizing), fork mode, on database 0 of the session Redis.
RUNNER = BrokerRunner("rq", ready_timeout_s=30)
stack = module_worker(RUNNER)


def test_worker_command_is_rqs_cli_with_json_and_the_queue_config(monkeypatch: pytest.MonkeyPatch) -> None:
    safe = worker_command(Settings(queue_config="safe"))
    assert safe[-1] == "fbt" and "worker" in safe and "--with-scheduler" in safe
    assert safe[safe.index("--serializer") + 1] == "rq.serializers.JSONSerializer"
    assert safe[safe.index("--worker-ttl") + 1] == "20"
    monkeypatch.setenv("RQ_WORKER_MODE", "simple")
    get_rq_settings.cache_clear()
    try:
        defaults = worker_command(Settings(queue_config="defaults"))
    finally:
        get_rq_settings.cache_clear()
    assert defaults[defaults.index("--worker-class") + 1] == "rq.SimpleWorker"
    assert "--worker-ttl" not in defaults and "--with-scheduler" not in defaults


def test_every_kind_runs_and_its_state_progresses_to_succeeded(stack: WorkerEnv) -> None:
    ids = every_kind_runs_once(stack)
    # JSON on the wire, never pickle: the stored call is a plain JSON array naming our job function.
    raw = redis.Redis.from_url(stack.settings.redis_url).hget(f"rq:job:{ids['write_log']}", "data")
    assert raw is not None
    func, _, args, _ = json.loads(zlib.decompress(raw))
    assert func == "fbt_rq.jobs.write_log" and args[0]["payload"] == {"message": "hello from rq"}


def test_a_failing_job_is_retried_with_backoff_then_failed(stack: WorkerEnv) -> None:
    backend = RQBackend(stack.settings)
    job = Job(kind="resize_image", payload=MISSING_UPLOAD)
    try:
        backend.enqueue(job)
        # Safe queue config: the first try plus 2 retries (3 attempts), 1 s and 2 s apart, run by the
        # worker's scheduler.
        wait_until(lambda: backend.status(job.id) == JobState.failed, 60, "the job to fail for good")
    finally:
        backend.close()
    assert_retried_then_failed(events_by_id(stack)[job.id])


@pytest.mark.parametrize(("processes", "worker_class"), [("1", "simple"), ("2", "fork")])
def test_sigterm_lets_the_running_job_finish_then_the_worker_exits(
    tmp_path: Path, redis_server: RedisServer, smtp_sink: tuple[int, Path], processes: str, worker_class: str
) -> None:
    """One slot execs `rq worker` directly; two slots go through the supervisor, which forwards SIGTERM."""
    # Database 1: the module's worker listens on database 0 and must not take this job.
    own = RUNNER.env(
        tmp_path,
        on_db(redis_server.url, OWN_DB),
        smtp_sink,
        WORKER_PROCESSES=processes,
        RQ_WORKER_MODE=worker_class,
    )
    backend = RQBackend(own.settings)
    slow = slow_resize()
    try:
        with RUNNER.worker(own) as worker:
            backend.enqueue(slow)
            wait_until(
                lambda: backend.status(slow.id) == JobState.started, 30, "the slow job to start", worker
            )
            sigterm_and_wait(worker)
        assert backend.status(slow.id) == JobState.succeeded
        assert [e.ok for e in events_by_id(own)[slow.id]] == [True]
        # A clean shutdown unregisters the worker, so the healthcheck turns unhealthy at once.
        assert not RUNNER.ready(own)
    finally:
        backend.close()


def test_broker_down_gives_503_and_bad_health(tmp_path: Path, smtp_sink: tuple[int, Path]) -> None:
    RUNNER.broker_down(tmp_path, smtp_sink)
