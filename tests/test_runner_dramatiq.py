"""The Dramatiq runner end to end: a real Redis, a real SMTP sink, real ``fbt-worker-dramatiq`` processes."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from fastapi.testclient import TestClient

from fbt_api.app import create_app
from fbt_devstack.processes import ProcessGroup, log_tail
from fbt_devstack.redis_server import RedisServer
from fbt_dramatiq.backend import DramatiqBackend
from fbt_dramatiq.health import worker_ready
from fbt_tasks import ledger
from fbt_tasks.backend import BrokerUnavailable
from fbt_tasks.jobs import Job, JobState
from fbt_tasks.settings import Settings

pytestmark = pytest.mark.e2e

# Safety nets only: each wait normally ends far sooner, and nothing asserts on how long it took.
READY_TIMEOUT_S = 60
JOB_TIMEOUT_S = 60
# Dramatiq puts a SIGKILLed worker's messages back after heartbeat_timeout (10 s in the safe profile).
REDELIVERY_TIMEOUT_S = 120
WORKER_EXE = str(Path(sys.executable).with_name("fbt-worker-dramatiq"))
ORDER = [JobState.queued, JobState.started, JobState.succeeded]


def wait_for(predicate: Callable[[], object], timeout_s: float, what: str, poll_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout_s} s")
        time.sleep(poll_s)


class Stack:
    """Settings for the API side, the matching worker environment, and the worker processes."""

    def __init__(self, redis_url: str, smtp_port: int, workdir: Path) -> None:
        self.workdir = workdir
        self.env = {
            **os.environ,
            "BACKEND": "dramatiq",
            "QUEUE_CONFIG": "safe",
            "REDIS_URL": redis_url,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp_port),
            "LOG_FILE": str(workdir / "log.txt"),
            "LEDGER_FILE": str(workdir / "ledger.jsonl"),
            "MEDIA_DIR": str(workdir / "media"),
            # Two slots keep the load small on a shared 2-core machine.
            "WORKER_PROCESSES": "1",
            "WORKER_THREADS": "2",
        }
        self.settings = Settings(
            backend="dramatiq",
            queue_config="safe",
            redis_url=redis_url,
            media_dir=workdir / "media",
            worker_processes=1,
            worker_threads=2,
        )
        self.group = ProcessGroup()

    def start_worker(self, name: str = "worker") -> psutil.Process:
        proc = self.group.spawn(name, [WORKER_EXE], self.env, self.workdir / f"{name}.log")
        try:
            wait_for(lambda: worker_ready(self.settings), READY_TIMEOUT_S, "no worker heartbeat", poll_s=0.1)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{log_tail(self.workdir / f'{name}.log')}") from None
        return proc

    def events(self, job_id: str) -> list[ledger.CompletionEvent]:
        return [e for e in ledger.read_events(self.workdir / "ledger.jsonl") if e.id == job_id]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # A private server: the broker-down test below stops one, and db 1 gives the SIGKILL test its own queues.
    with RedisServer(workdir=tmp_path_factory.mktemp("dramatiq-redis")) as server:
        yield server.url


@pytest.fixture(scope="module")
def stack(
    redis_url: str, smtp_sink: tuple[int, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    running = Stack(redis_url, smtp_sink[0], tmp_path_factory.mktemp("dramatiq"))
    try:
        running.start_worker()
        yield running
    finally:
        running.group.stop_all()


def test_every_kind_runs_through_the_api(stack: Stack, smtp_sink: tuple[int, Path]) -> None:
    auth = {"X-API-Key": stack.settings.effective_api_key}
    calls = [
        ("/log/?msg=hello", None),
        ("/send-mail/?email=a@example.com", None),
        ("/notify/", None),
        ("/resize", {"width": 640, "height": 480, "target_width": 64, "target_height": 48}),
    ]
    with TestClient(create_app(stack.settings)) as client:
        assert client.get("/health").json() == {"status": "ok", "backend": "dramatiq", "broker": "up"}
        job_ids = []
        for url, body in calls:
            response = client.post(url, json=body, headers=auth)
            assert response.status_code == 200, response.text
            assert response.json()["backend"] == "dramatiq"
            job_ids.append(response.json()["job_id"])
        for job_id in job_ids:
            seen: list[JobState] = []

            def settled(job_id: str = job_id, seen: list[JobState] = seen) -> bool:
                state = JobState(client.get(f"/jobs/{job_id}", headers=auth).json()["state"])
                if not seen or seen[-1] != state:
                    seen.append(state)
                return state in (JobState.succeeded, JobState.failed)

            wait_for(settled, JOB_TIMEOUT_S, f"job {job_id} did not finish")
            assert seen[-1] == JobState.succeeded, seen
            # States only move forward: queued -> started -> succeeded (fast jobs may skip the first two).
            assert [ORDER.index(s) for s in seen] == sorted(ORDER.index(s) for s in seen), seen
            [event] = stack.events(job_id)
            assert event.ok and event.attempt == 1
    assert any(job_ids[1] in line for line in smtp_sink[1].read_text().splitlines())


def test_failing_job_is_retried_then_failed(stack: Stack) -> None:
    backend = DramatiqBackend(stack.settings)
    try:
        job = Job(kind="write_log", payload={"unexpected": "argument"})
        backend.enqueue(job, background=None)  # type: ignore[arg-type]  # ignored by broker runners
        wait_for(
            lambda: backend.status(job.id) == JobState.failed, JOB_TIMEOUT_S, f"job {job.id} did not fail"
        )
        events = stack.events(job.id)
        # The safe profile allows at most 3 attempts, each recorded with Dramatiq's attempt number.
        assert [(e.attempt, e.ok) for e in events] == [(1, False), (2, False), (3, False)]
        assert events[0].error is not None and "TypeError" in events[0].error
    finally:
        backend.close()


def test_healthcheck_module_sees_the_worker(stack: Stack) -> None:
    check = subprocess.run(
        [sys.executable, "-m", "fbt_dramatiq.health"],
        env=stack.env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_sigkilled_worker_job_is_redelivered(
    redis_url: str, smtp_sink: tuple[int, Path], tmp_path: Path
) -> None:
    # Database 1 has its own queues and heartbeats, so the module's worker cannot take the job.
    isolated = Stack(redis_url.rsplit("/", 1)[0] + "/1", smtp_sink[0], tmp_path)
    backend = DramatiqBackend(isolated.settings)
    try:
        victim = isolated.start_worker("victim")
        victim_pids = {victim.pid, *(child.pid for child in victim.children(recursive=True))}
        # Big enough to still be running when the kill lands a few polls after it started.
        job = Job(kind="resize_image", payload={"output": "big.jpg", "target_width": 64, "target_height": 40,
                                                "width": 6000, "height": 4000})  # fmt: skip
        backend.enqueue(job, background=None)  # type: ignore[arg-type]
        wait_for(
            lambda: backend.status(job.id) == JobState.started, JOB_TIMEOUT_S, "the job never started", 0.01
        )
        isolated.group.kill("victim", signal.SIGKILL)
        assert isolated.events(job.id) == [], "the job finished before the kill; nothing was tested"
        killed_at = time.monotonic()
        isolated.start_worker("successor")
        wait_for(
            lambda: backend.status(job.id) == JobState.succeeded, REDELIVERY_TIMEOUT_S, "never redelivered"
        )
        print(f"redelivered and finished {time.monotonic() - killed_at:.1f} s after the SIGKILL")
        [event] = isolated.events(job.id)
        assert event.ok and event.pid not in victim_pids
    finally:
        backend.close()
        isolated.group.stop_all()


def test_sigterm_stops_the_worker_cleanly(
    redis_url: str, smtp_sink: tuple[int, Path], tmp_path: Path
) -> None:
    own = Stack(redis_url.rsplit("/", 1)[0] + "/2", smtp_sink[0], tmp_path)
    try:
        root = own.start_worker()
        tree = [root, *root.children(recursive=True)]
        assert own.group.stop("worker", timeout_s=30) == 0
        assert not [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        # A clean shutdown marks the worker's heartbeat dead, so the healthcheck notices at once.
        assert not worker_ready(own.settings)
    finally:
        own.group.stop_all()


def test_broker_down_answers_503(tmp_path: Path) -> None:
    server = RedisServer(workdir=tmp_path / "redis").start()
    try:
        settings = Settings(backend="dramatiq", queue_config="safe", redis_url=server.url)
        auth = {"X-API-Key": settings.effective_api_key}
        with TestClient(create_app(settings)) as client:
            assert client.post("/log/?msg=up", headers=auth).status_code == 200
            server.stop()
            response = client.post("/log/?msg=down", headers=auth)
            assert response.status_code == 503
            assert response.json()["detail"].startswith("Broker unavailable, nothing was enqueued")
            health = client.get("/health")
            assert health.status_code == 503 and health.json()["broker"] == "down"
        backend = DramatiqBackend(settings)
        try:
            with pytest.raises(BrokerUnavailable):
                backend.enqueue(Job(kind="notify", payload={"user": "x"}), background=None)  # type: ignore[arg-type]
            assert not backend.ping()
            assert not worker_ready(settings)
        finally:
            backend.close()
    finally:
        server.stop()
