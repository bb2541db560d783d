"""The RQ runner end to end: a real Redis, the real ``fbt-worker-rq`` process tree, a real SMTP sink.

Kept lean: one worker serves the happy path and the retry path; SIGTERM and the 503 path get their own
short-lived worker or Redis. The SIGKILL-redelivery trial takes over a minute (RQ's abandoned-job deadline
is heartbeat + 60 s), so it lives in the fault benchmark, not here.
"""

import json
import signal
import subprocess
import zlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import psutil
import pytest
import redis
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
from fbt_devstack.processes import is_alive
from fbt_devstack.redis_server import RedisServer
from fbt_devstack.smtp_sink import wait_for_mail
from fbt_rq.backend import RQBackend
from fbt_rq.health import worker_ready
from fbt_rq.worker import worker_command
from fbt_tasks.backend import BrokerUnavailable
from fbt_tasks.jobs import Job, JobState
from fbt_tasks.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def make_env(tmp: Path, redis_url: str, smtp: tuple[int, Path], **extra: str) -> WorkerEnv:
    return make_worker_env("rq", tmp, redis_url, smtp, **extra)


def running_worker(worker_env: WorkerEnv) -> AbstractContextManager[subprocess.Popen[bytes]]:
    return start_worker(worker_env, worker_ready, "an RQ worker to register", timeout_s=30)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, smtp_sink: tuple[int, Path]
) -> Iterator[WorkerEnv]:
    """One 2-process RQ worker (safe queue config, fork) on the session Redis, db 0."""
    built = make_env(tmp_path_factory.mktemp("rq"), redis_server.url, smtp_sink)
    with running_worker(built):
        yield built


def test_worker_command_is_rqs_cli_with_json_and_the_queue_config() -> None:
    safe = worker_command(Settings(queue_config="safe"))
    assert safe[-1] == "fbt" and "worker" in safe and "--with-scheduler" in safe
    assert safe[safe.index("--serializer") + 1] == "rq.serializers.JSONSerializer"
    assert safe[safe.index("--worker-ttl") + 1] == "20"
    defaults = worker_command(Settings(queue_config="defaults", rq_worker_mode="simple"))
    assert defaults[defaults.index("--worker-class") + 1] == "rq.SimpleWorker"
    assert "--worker-ttl" not in defaults and "--with-scheduler" not in defaults


def test_every_kind_runs_and_its_state_progresses_to_succeeded(stack: WorkerEnv) -> None:
    with TestClient(create_app(stack.settings)) as client:
        ids, seen = every_kind_until_succeeded(client, "rq")

    order = ["queued", "started", "succeeded"]
    assert all(is_in_order(states, order) for states in seen.values()), seen
    events = events_by_id(stack)
    for kind, job_id in ids.items():
        assert [(e.kind, e.ok, e.attempt) for e in events[job_id]] == [(kind, True, 1)]
    mails = wait_for_mail(stack.mailbox, 1, timeout_s=10)
    assert f"<{ids['send_email']}@fbt.localhost>" in {m.message_id for m in mails}
    # JSON on the wire, never pickle: the stored call is a plain JSON array naming our job function.
    raw = redis.Redis.from_url(stack.settings.redis_url).hget(f"rq:job:{ids['write_log']}", "data")
    assert raw is not None
    func, _, args, _ = json.loads(zlib.decompress(raw))
    assert func == "fbt_rq.jobs.write_log" and args[0]["payload"] == {"message": "hello from rq"}


def test_a_failing_job_is_retried_with_backoff_then_failed(stack: WorkerEnv) -> None:
    backend = RQBackend(stack.settings)
    payload = {"source": "no-such-upload.png", "target_width": 8, "target_height": 8, "output": "x.jpg"}
    job = Job(kind="resize_image", payload=payload)
    try:
        backend.enqueue(job, None)
        # Safe queue config: the first try plus 2 retries (3 attempts), 1 s and 2 s apart, run by the
        # worker's scheduler.
        wait_until(lambda: backend.status(job.id) == JobState.failed, 60, "the job to fail for good")
    finally:
        backend.close()
    events = events_by_id(stack)[job.id]
    assert [e.attempt for e in events] == [1, 2, 3]
    assert not any(e.ok for e in events)
    assert all(e.error and e.error.startswith("FileNotFoundError") for e in events)


@pytest.mark.parametrize(("processes", "worker_class"), [("1", "simple"), ("2", "fork")])
def test_sigterm_lets_the_running_job_finish_then_the_worker_exits(
    tmp_path: Path, redis_server: RedisServer, smtp_sink: tuple[int, Path], processes: str, worker_class: str
) -> None:
    """One slot execs `rq worker` directly; two slots go through the supervisor, which forwards SIGTERM."""
    # Database 1: the module's worker listens on database 0 and must not take this job.
    url = redis_server.url.rsplit("/", 1)[0] + "/1"
    own = make_env(tmp_path, url, smtp_sink, WORKER_PROCESSES=processes, RQ_WORKER_MODE=worker_class)
    backend = RQBackend(own.settings)
    # About a second of CPU: long enough to still be running when SIGTERM arrives.
    slow = Job(
        kind="resize_image", payload={**SMALL_RESIZE, "width": 6000, "height": 4000, "output": "slow.jpg"}
    )
    try:
        with running_worker(own) as worker:
            backend.enqueue(slow, None)
            wait_until(
                lambda: backend.status(slow.id) == JobState.started, 30, "the slow job to start", worker
            )
            root = psutil.Process(worker.pid)
            tree = [root, *root.children(recursive=True)]
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=60) == 0
            assert not [p.pid for p in tree if is_alive(p)]
        assert backend.status(slow.id) == JobState.succeeded
        assert [e.ok for e in events_by_id(own)[slow.id]] == [True]
        # A clean shutdown unregisters the worker, so the healthcheck turns unhealthy at once.
        assert not worker_ready(own.settings)
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
            server.start()
            assert client.post("/log/?msg=back", headers=AUTH).status_code == 200
