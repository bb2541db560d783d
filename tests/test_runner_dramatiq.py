"""The Dramatiq runner end to end: a real Redis, a real SMTP sink, real ``fbt-worker-dramatiq`` processes.

Kept lean, like the other runners' tests (``runner_support``): one worker serves the happy path, the retry
path and the healthcheck; the SIGKILL redelivery, SIGTERM and the 503 path get their own worker or Redis.
"""

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
import redis
from runner_support import (
    OWN_DB,
    BrokerRunner,
    WorkerEnv,
    assert_failed_once,
    assert_health_modules_pass,
    events_by_id,
    every_kind_runs_once,
    module_worker,
    on_db,
    sigterm_and_wait,
    slow_resize,
    wait_until,
)

from fbt_devstack.processes import kill_tree
from fbt_devstack.redis_server import RedisServer
from fbt_dramatiq.backend import DramatiqBackend
from fbt_dramatiq.broker import build_broker
from fbt_tasks.jobs import Job, JobState
from fbt_tasks.registry import configure
from fbt_tasks.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

# Dramatiq puts a SIGKILLed worker's messages back after heartbeat_timeout (10 s in the safe queue config).
REDELIVERY_TIMEOUT_S = 120
# One process x two threads: two slots keep the load small on a shared 2-core machine. Database 4 of the
# session Redis; the SIGKILL and SIGTERM tests use 5 and 6.
RUNNER = BrokerRunner("dramatiq", sizing={"WORKER_PROCESSES": "1", "WORKER_THREADS": "2"})
stack = module_worker(RUNNER)


def test_every_kind_runs_and_its_state_progresses_to_succeeded(stack: WorkerEnv) -> None:
    every_kind_runs_once(stack)


def test_a_permanently_failing_job_is_not_retried(stack: WorkerEnv) -> None:
    backend = DramatiqBackend(stack.settings)
    try:
        job = Job(kind="write_log", payload={"unexpected": "argument"})
        backend.enqueue(job)
        wait_until(lambda: backend.status(job.id) == JobState.failed, 60, "the job to fail for good")
    finally:
        backend.close()
    # A TypeError fails the same way every time: the safe queue config retries only transient errors
    # (fbt_tasks.retry), so the one attempt is final.
    assert_failed_once(events_by_id(stack)[job.id])


def test_healthcheck_modules_see_the_worker(stack: WorkerEnv) -> None:
    assert_health_modules_pass(stack)


def test_sigkilled_worker_job_is_redelivered(
    tmp_path: Path, redis_server: RedisServer, smtp_sink: tuple[int, Path]
) -> None:
    # Database 5 has its own queues and heartbeats, so the module's worker cannot take the job.
    isolated = RUNNER.env(tmp_path, on_db(redis_server.url, OWN_DB), smtp_sink)
    backend = DramatiqBackend(isolated.settings)
    # Big enough to still be running when the kill lands a few polls after it started.
    job = slow_resize("big.jpg")
    try:
        with RUNNER.worker(isolated) as victim:
            victim_pids = {victim.pid, *(c.pid for c in psutil.Process(victim.pid).children(recursive=True))}
            backend.enqueue(job)
            wait_until(lambda: backend.status(job.id) == JobState.started, 60, "the job to start", victim)
            kill_tree(victim.pid, signal.SIGKILL)
            victim.wait(timeout=10)
        assert job.id not in events_by_id(isolated), "the job finished before the kill; nothing was tested"
        killed_at = time.monotonic()
        with RUNNER.worker(isolated):
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
    own = RUNNER.env(tmp_path, on_db(redis_server.url, OWN_DB + 1), smtp_sink)
    with RUNNER.worker(own) as worker:
        sigterm_and_wait(worker, timeout_s=30)
    # A clean shutdown marks the worker's heartbeat dead, so the healthcheck notices at once.
    assert not RUNNER.ready(own)


def test_broker_down_gives_503_and_bad_health(tmp_path: Path, smtp_sink: tuple[int, Path]) -> None:
    RUNNER.broker_down(tmp_path, smtp_sink)


def test_workers_ride_out_a_broker_restart_the_api_fails_fast(tmp_path: Path) -> None:
    # The safe config's workers retry a failed Redis command for a while, so a Retries re-enqueue (and the
    # ack) survive a restart; the API's client fails at once so that it can answer 503.
    with RedisServer(workdir=tmp_path) as server:
        settings = configure(Settings(_env_file=None, backend="dramatiq", redis_url=server.url))  # type: ignore[call-arg]
        workers, api = build_broker(settings, for_workers=True), build_broker(settings)
        try:
            server.stop()
            with pytest.raises(redis.ConnectionError):
                api.client.ping()  # type: ignore[attr-defined]  # RedisBroker's
            with ThreadPoolExecutor(1) as pool:
                pinged = pool.submit(workers.client.ping)  # type: ignore[attr-defined]
                time.sleep(1.0)
                assert not pinged.done(), "the workers' client gave up while Redis was down"
                server.start()
                assert pinged.result(timeout=60) is True
        finally:
            workers.close()
            api.close()
