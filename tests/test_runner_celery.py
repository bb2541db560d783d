"""The Celery runner end to end: a real Redis, the real ``fbt-worker-celery`` process tree, a real SMTP sink.

Kept lean: one worker (safe queue config, 2 prefork processes) serves the happy path, the retry path and a pool
process killed mid-job; SIGTERM, the 503 path and the defaults queue config (no result backend) get their own
short-lived worker or Redis. A SIGKILL of
the *whole* worker is recovered only after the visibility timeout (~31 s), so that trial lives in the fault
benchmark, not here.
"""

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import redis
from celery.result import AsyncResult
from runner_support import (
    MISSING_UPLOAD,
    OWN_DB,
    SMALL_RESIZE,
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

from fbt_celery.app import celery_config
from fbt_celery.app import create_app as create_celery_app
from fbt_celery.backend import CeleryBackend
from fbt_celery.faults import FAULTS
from fbt_celery.tasks import retry_options
from fbt_celery.worker import worker_argv
from fbt_devstack.redis_server import RedisServer
from fbt_tasks.backend import BrokerUnavailable
from fbt_tasks.jobs import Job, JobState
from fbt_tasks.registry import configure
from fbt_tasks.retry import TRANSIENT_ERRORS
from fbt_tasks.runner import NO_HOLDINGS, FaultOutcome
from fbt_tasks.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

# Two prefork processes (make_worker_env's sizing), on database 2 of the session Redis.
RUNNER = BrokerRunner("celery")
stack = module_worker(RUNNER)


@pytest.fixture
def backend_for() -> Iterator[Callable[[WorkerEnv], CeleryBackend]]:
    made: list[CeleryBackend] = []

    def make(stack: WorkerEnv) -> CeleryBackend:
        made.append(CeleryBackend(stack.settings))
        return made[-1]

    yield make
    for backend in made:
        backend.close()


def test_worker_is_celerys_cli_with_prefork_and_one_process_per_slot() -> None:
    argv = worker_argv(Settings(worker_processes=3, worker_threads=2))
    assert argv[:3] == ["-A", "fbt_celery.app", "worker"]
    assert argv[argv.index("--pool") + 1] == "prefork"
    assert argv[argv.index("--concurrency") + 1] == "6"


def test_queue_configs_are_json_only_and_safe_adds_the_documented_reliability_settings() -> None:
    safe = celery_config(configure(Settings(backend="celery", queue_config="safe")))
    defaults = celery_config(configure(Settings(backend="celery", queue_config="defaults")))
    for config in (safe, defaults):
        assert config["accept_content"] == config["result_accept_content"] == ["json"]
        assert config["task_serializer"] == config["result_serializer"] == "json"
        assert config["task_publish_retry"] is False
        assert config["broker_transport_options"]["socket_timeout"] == 1.0
    assert safe["task_acks_late"] and safe["task_reject_on_worker_lost"]
    assert safe["worker_prefetch_multiplier"] == 1
    assert safe["broker_transport_options"]["unacked_restore_throttle"] == 1
    assert (
        "task_acks_late" not in defaults and "visibility_timeout" not in defaults["broker_transport_options"]
    )
    # Job states for /jobs: safe keeps them in Redis; defaults runs as Celery ships, with no result backend.
    assert safe["result_backend"].startswith("redis://") and safe["task_track_started"] is True
    assert "result_backend" not in defaults and "task_track_started" not in defaults
    # Only transient errors are retried (fbt_tasks.retry); a ValueError from a bad header fails at once.
    assert (
        retry_options(configure(Settings(backend="celery", queue_config="safe")))["autoretry_for"]
        == TRANSIENT_ERRORS
    )
    assert retry_options(configure(Settings(backend="celery", queue_config="defaults"))) == {}


def test_on_rabbitmq_safe_adds_quorum_queues_persistence_and_publisher_confirms() -> None:
    safe = celery_config(configure(Settings(backend="celery", broker="rabbitmq", queue_config="safe")))
    defaults = celery_config(
        configure(Settings(backend="celery", broker="rabbitmq", queue_config="defaults"))
    )
    for config in (safe, defaults):
        assert config["broker_url"].startswith("amqp://")
        assert "visibility_timeout" not in config["broker_transport_options"]
    # Results in Redis beside RabbitMQ in safe only: defaults is Celery out of the box, which has no result
    # backend (it used to keep Redis for /jobs; the issue asked for Celery's own default instead).
    assert safe["result_backend"].startswith("redis://")
    assert "result_backend" not in defaults and "task_track_started" not in defaults
    assert (
        safe["task_acks_late"]
        and safe["task_reject_on_worker_lost"]
        and safe["worker_prefetch_multiplier"] == 1
    )
    assert safe["task_default_queue_type"] == "quorum" and safe["task_default_exchange_type"] == "topic"
    assert safe["broker_transport_options"]["confirm_publish"] is True
    assert "task_acks_late" not in defaults and "confirm_publish" not in defaults["broker_transport_options"]


def test_every_kind_runs_and_its_state_progresses_to_succeeded(stack: WorkerEnv) -> None:
    ids = every_kind_runs_once(stack)
    # The result backend stores plain JSON (json.loads would fail on a pickle).
    meta = redis.Redis.from_url(stack.settings.redis_url).get(f"celery-task-meta-{ids['write_log']}")
    assert meta is not None and json.loads(meta)["status"] == "SUCCESS"


def test_a_failing_job_is_retried_then_failed(
    stack: WorkerEnv, backend_for: Callable[[WorkerEnv], CeleryBackend]
) -> None:
    backend = backend_for(stack)
    job = Job(kind="resize_image", payload=MISSING_UPLOAD)
    backend.enqueue(job)
    # Safe queue config: the first run plus 2 retries, 1 s and 2 s later.
    wait_until(lambda: backend.status(job.id) == JobState.failed, 60, "the job to fail for good")
    assert_retried_then_failed(events_by_id(stack)[job.id])


def test_a_pool_process_killed_mid_job_has_its_job_redelivered(
    stack: WorkerEnv, backend_for: Callable[[WorkerEnv], CeleryBackend]
) -> None:
    backend = backend_for(stack)
    # The largest resize allowed (~2 s of CPU) leaves ample time to find and kill its process.
    job = Job(
        kind="resize_image", payload={**SMALL_RESIZE, "width": 8000, "height": 5000, "output": "killed.jpg"}
    )
    backend.enqueue(job)
    wait_until(lambda: backend.status(job.id) == JobState.started, 30, "the slow job to start")
    # With task_track_started the STARTED record names the pool process running the task.
    celery_app = create_celery_app(stack.settings)
    try:
        child = psutil.Process(AsyncResult(job.id, app=celery_app).info["pid"])
    finally:
        celery_app.close()
    child.kill()
    # task_reject_on_worker_lost: the parent requeues the message at once, no visibility timeout involved.
    wait_until(lambda: backend.status(job.id) == JobState.succeeded, 60, "the redelivered job to succeed")
    events = events_by_id(stack)[job.id]
    assert [e.ok for e in events] == [True] and events[0].pid != child.pid


def test_sigterm_lets_the_running_job_finish_then_the_worker_exits(
    tmp_path: Path,
    redis_server: RedisServer,
    smtp_sink: tuple[int, Path],
    backend_for: Callable[[WorkerEnv], CeleryBackend],
) -> None:
    # Database 3: the module's worker consumes database 2 and must not take this job.
    own = RUNNER.env(tmp_path, on_db(redis_server.url, OWN_DB), smtp_sink, WORKER_PROCESSES="1")
    backend = backend_for(own)
    slow = slow_resize()
    with RUNNER.worker(own) as worker:
        backend.enqueue(slow)
        wait_until(lambda: backend.status(slow.id) == JobState.started, 30, "the slow job to start", worker)
        sigterm_and_wait(worker)
    assert backend.status(slow.id) == JobState.succeeded
    assert [e.ok for e in events_by_id(own)[slow.id]] == [True]
    assert not RUNNER.ready(own)


def test_broker_down_gives_503_and_bad_health(tmp_path: Path, smtp_sink: tuple[int, Path]) -> None:
    def queued_as_json(accepted: httpx.Response, server: RedisServer) -> None:
        # No worker here, so the message is still in the queue: JSON on the wire, never pickle.
        (raw,) = redis.Redis.from_url(server.url).lrange("celery", 0, -1)
        message = json.loads(raw)
        assert message["content-type"] == "application/json"
        assert message["headers"]["id"] == accepted.json()["job_id"]

    RUNNER.broker_down(tmp_path, smtp_sink, when_up=queued_as_json)


def test_defaults_store_no_job_state_so_jobs_reads_queued_and_503_when_redis_is_down(
    tmp_path: Path, smtp_sink: tuple[int, Path], backend_for: Callable[[WorkerEnv], CeleryBackend]
) -> None:
    # Celery out of the box has no result backend (DisabledBackend): the worker stores nothing, so /jobs can
    # tell nothing of any id, a finished job's included, and the fault model counts no FAILURE.
    with RedisServer(workdir=tmp_path / "redis") as server:
        own = RUNNER.env(tmp_path, server.url, smtp_sink, QUEUE_CONFIG="defaults", WORKER_PROCESSES="1")
        backend = backend_for(own)
        described = backend.describe()
        assert str(described["result_backend"]).startswith("none") and described["track_started"] is False
        assert "every id reads queued" in described["job_status"]
        job = Job(kind="write_log", payload={"message": "no result backend"})
        backend.enqueue(job)
        assert FAULTS.holdings(own.settings, {job.id}) == {**NO_HOLDINGS, "queued": 1}
        with RUNNER.worker(own) as worker:
            wait_until(lambda: job.id in events_by_id(own), 30, "the job to run", worker)
        assert [e.ok for e in events_by_id(own)[job.id]] == [True]
        assert backend.status(job.id) == backend.status("0" * 32) == JobState.queued
        assert redis.Redis.from_url(server.url).keys("celery-task-meta-*") == []
        assert "worker log" in FAULTS.mechanism("task-error", described, FaultOutcome())
        server.stop()
        with pytest.raises(BrokerUnavailable):
            backend.status(job.id)
