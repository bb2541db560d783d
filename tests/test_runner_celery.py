"""The Celery runner end to end: a real Redis, the real ``fbt-worker-celery`` process tree, a real SMTP sink.

Kept lean: one worker (safe queue config, 2 prefork processes) serves the happy path, the retry path and a pool
process killed mid-job; SIGTERM and the 503 path get their own short-lived worker or Redis. A SIGKILL of
the *whole* worker is recovered only after the visibility timeout (~31 s), so that trial lives in the fault
benchmark, not here.
"""

import json
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import psutil
import pytest
import redis
from celery.result import AsyncResult
from fastapi.testclient import TestClient
from runner_support import (
    AUTH,
    WorkerEnv,
    events_by_id,
    every_kind_until_succeeded,
    is_in_order,
    make_worker_env,
    wait_until,
)
from runner_support import running_worker as start_worker

from fbt_api.app import create_app
from fbt_celery.app import celery_config
from fbt_celery.app import create_app as create_celery_app
from fbt_celery.backend import CeleryBackend
from fbt_celery.health import worker_ready
from fbt_celery.tasks import retry_options
from fbt_celery.worker import worker_argv
from fbt_devstack.processes import is_alive
from fbt_devstack.redis_server import RedisServer
from fbt_devstack.smtp_sink import wait_for_mail
from fbt_tasks.backend import BrokerUnavailable
from fbt_tasks.jobs import Job, JobState
from fbt_tasks.retry import TRANSIENT_ERRORS
from fbt_tasks.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

# About a second of CPU: long enough to signal a worker while it runs, short enough for a lean suite.
SLOW_RESIZE = {"width": 6000, "height": 4000, "target_width": 8, "target_height": 8}


def on_db(url: str, db: int) -> str:
    """The session Redis, another database: other runners' tests use db 0."""
    return f"{url.rsplit('/', 1)[0]}/{db}"


def make_env(tmp: Path, redis_url: str, smtp: tuple[int, Path], **extra: str) -> WorkerEnv:
    return make_worker_env("celery", tmp, redis_url, smtp, **extra)


def running_worker(worker_env: WorkerEnv) -> AbstractContextManager[subprocess.Popen[bytes]]:
    return start_worker(worker_env, worker_ready, "a Celery worker to answer a ping", timeout_s=60)


@pytest.fixture
def backend_for() -> Iterator[Callable[[WorkerEnv], CeleryBackend]]:
    made: list[CeleryBackend] = []

    def make(stack: WorkerEnv) -> CeleryBackend:
        made.append(CeleryBackend(stack.settings))
        return made[-1]

    yield make
    for backend in made:
        backend.close()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, smtp_sink: tuple[int, Path]
) -> Iterator[WorkerEnv]:
    """One 2-process prefork worker, safe queue config, on database 2 of the session Redis."""
    built = make_env(tmp_path_factory.mktemp("celery"), on_db(redis_server.url, 2), smtp_sink)
    with running_worker(built):
        yield built


def test_worker_is_celerys_cli_with_prefork_and_one_process_per_slot() -> None:
    argv = worker_argv(Settings(worker_processes=3, worker_threads=2))
    assert argv[:3] == ["-A", "fbt_celery.app", "worker"]
    assert argv[argv.index("--pool") + 1] == "prefork"
    assert argv[argv.index("--concurrency") + 1] == "6"


def test_queue_configs_are_json_only_and_safe_adds_the_documented_reliability_settings() -> None:
    safe = celery_config(Settings(backend="celery", queue_config="safe"))
    defaults = celery_config(Settings(backend="celery", queue_config="defaults"))
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
    # Only transient errors are retried (fbt_tasks.retry); a ValueError from a bad header fails at once.
    assert retry_options(Settings(backend="celery", queue_config="safe"))["autoretry_for"] == TRANSIENT_ERRORS
    assert retry_options(Settings(backend="celery", queue_config="defaults")) == {}


def test_on_rabbitmq_safe_adds_quorum_queues_persistence_and_publisher_confirms() -> None:
    safe = celery_config(Settings(backend="celery", broker="rabbitmq", queue_config="safe"))
    defaults = celery_config(Settings(backend="celery", broker="rabbitmq", queue_config="defaults"))
    for config in (safe, defaults):
        assert config["broker_url"].startswith("amqp://") and config["result_backend"].startswith("redis://")
        assert "visibility_timeout" not in config["broker_transport_options"]
    assert (
        safe["task_acks_late"]
        and safe["task_reject_on_worker_lost"]
        and safe["worker_prefetch_multiplier"] == 1
    )
    assert safe["task_default_queue_type"] == "quorum" and safe["task_default_exchange_type"] == "topic"
    assert safe["broker_transport_options"]["confirm_publish"] is True
    assert "task_acks_late" not in defaults and "confirm_publish" not in defaults["broker_transport_options"]


def test_every_kind_runs_and_its_state_progresses_to_succeeded(stack: WorkerEnv) -> None:
    with TestClient(create_app(stack.settings)) as client:
        ids, seen = every_kind_until_succeeded(client, "celery")

    assert all(is_in_order(states, ["queued", "started", "succeeded"]) for states in seen.values()), seen
    events = events_by_id(stack)
    for kind, job_id in ids.items():
        assert [(e.kind, e.ok, e.attempt) for e in events[job_id]] == [(kind, True, 1)]
    mails = wait_for_mail(stack.mailbox, 1, timeout_s=10)
    assert f"<{ids['send_email']}@fbt.localhost>" in {m.message_id for m in mails}
    # The result backend stores plain JSON (json.loads would fail on a pickle).
    meta = redis.Redis.from_url(stack.settings.redis_url).get(f"celery-task-meta-{ids['write_log']}")
    assert meta is not None and json.loads(meta)["status"] == "SUCCESS"


def test_a_failing_job_is_retried_then_failed(
    stack: WorkerEnv, backend_for: Callable[[WorkerEnv], CeleryBackend]
) -> None:
    backend = backend_for(stack)
    payload = {"source": "no-such-upload.png", "target_width": 8, "target_height": 8, "output": "x.jpg"}
    job = Job(kind="resize_image", payload=payload)
    backend.enqueue(job, None)
    # Safe queue config: the first run plus 2 retries, 1 s and 2 s later.
    wait_until(lambda: backend.status(job.id) == JobState.failed, 60, "the job to fail for good")
    events = events_by_id(stack)[job.id]
    assert [e.attempt for e in events] == [1, 2, 3]
    assert not any(e.ok for e in events)
    assert all(e.error and e.error.startswith("FileNotFoundError") for e in events)


def test_a_pool_process_killed_mid_job_has_its_job_redelivered(
    stack: WorkerEnv, backend_for: Callable[[WorkerEnv], CeleryBackend]
) -> None:
    backend = backend_for(stack)
    # The largest resize allowed (~2 s of CPU) leaves ample time to find and kill its process.
    job = Job(
        kind="resize_image", payload={**SLOW_RESIZE, "width": 8000, "height": 5000, "output": "killed.jpg"}
    )
    backend.enqueue(job, None)
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
    own = make_env(tmp_path, on_db(redis_server.url, 3), smtp_sink, WORKER_PROCESSES="1")
    backend = backend_for(own)
    slow = Job(kind="resize_image", payload={**SLOW_RESIZE, "output": "slow.jpg"})
    with running_worker(own) as worker:
        backend.enqueue(slow, None)
        wait_until(lambda: backend.status(slow.id) == JobState.started, 30, "the slow job to start", worker)
        tree = [worker, *psutil.Process(worker.pid).children(recursive=True)]
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
        assert not [p.pid for p in tree if isinstance(p, psutil.Process) and is_alive(p)]
    assert backend.status(slow.id) == JobState.succeeded
    assert [e.ok for e in events_by_id(own)[slow.id]] == [True]
    assert not worker_ready(own.settings)


def test_broker_down_gives_503_and_bad_health(tmp_path: Path, smtp_sink: tuple[int, Path]) -> None:
    with RedisServer(workdir=tmp_path / "redis") as server:
        down = make_env(tmp_path, server.url, smtp_sink)
        with TestClient(create_app(down.settings)) as client:
            accepted = client.post("/log/?msg=up", headers=AUTH)
            assert accepted.status_code == 200
            # No worker here, so the message is still in the queue: JSON on the wire, never pickle.
            (raw,) = redis.Redis.from_url(server.url).lrange("celery", 0, -1)
            message = json.loads(raw)
            assert message["content-type"] == "application/json"
            assert message["headers"]["id"] == accepted.json()["job_id"]
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
