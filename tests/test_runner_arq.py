"""The arq runner end to end: a real Redis, the real ``fbt-worker-arq`` process tree, a real SMTP sink.

Kept lean, like the other runners' tests (``runner_support``): one worker serves the happy path and the retry
paths; SIGTERM and the 503 path get their own worker or Redis; the SIGKILL cell is the fault harness's
kill-mid-send cell (runner_support.KILL_MID_SEND), on a stack of its own. Databases 12 and 13 of the
session Redis are arq's (the other runners' tests use 0-7).
"""

import json
import signal
import subprocess
import sys
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
from fbt_arq.backend import ArqBackend
from fbt_arq.health import worker_ready
from fbt_arq.wire import QUEUE_NAME, dumps, job_key, loads, result_key
from fbt_arq.worker import SETTINGS_PATH, worker_command
from fbt_arq.worker_settings import worker_settings
from fbt_bench.faults.model import FULL, Cell
from fbt_bench.faults.observe import deliveries
from fbt_bench.faults.run import run_cell
from fbt_bench.measuring.environment import describe_runner
from fbt_devstack.processes import is_alive
from fbt_devstack.redis_server import RedisServer
from fbt_devstack.smtp_sink import wait_for_mail
from fbt_tasks.backend import BrokerUnavailable
from fbt_tasks.jobs import Job, JobState
from fbt_tasks.runner import load_runner
from fbt_tasks.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def on_db(url: str, db: int) -> str:
    return f"{url.rsplit('/', 1)[0]}/{db}"


def make_env(tmp: Path, redis_url: str, smtp: tuple[int, Path], **extra: str) -> WorkerEnv:
    # One process x two concurrent jobs: two slots keep the load small on a shared 2-core machine.
    options = {"WORKER_PROCESSES": "1", "WORKER_THREADS": "2", **extra}
    return make_worker_env("arq", tmp, redis_url, smtp, **options)


def running_worker(worker_env: WorkerEnv) -> AbstractContextManager[subprocess.Popen[bytes]]:
    return start_worker(worker_env, worker_ready, "arq's health-check key", timeout_s=60)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, smtp_sink: tuple[int, Path]
) -> Iterator[WorkerEnv]:
    """One worker, safe queue config, on database 12 of the session Redis."""
    built = make_env(tmp_path_factory.mktemp("arq"), on_db(redis_server.url, 12), smtp_sink)
    with running_worker(built):
        yield built


def test_worker_runs_arqs_cli_with_settings_from_the_queue_config() -> None:
    assert SETTINGS_PATH in worker_command(Settings(backend="arq"))
    safe = worker_settings(Settings(backend="arq", queue_config="safe", worker_threads=3, smtp_timeout_s=10))
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
    defaults = worker_settings(Settings(backend="arq", queue_config="defaults"))
    assert (defaults["max_tries"], defaults["job_timeout"], defaults["job_completion_wait"]) == (5, 300, 0)


def test_every_kind_runs_and_its_state_progresses_to_succeeded(stack: WorkerEnv) -> None:
    with TestClient(create_app(stack.settings)) as client:
        ids, seen = every_kind_until_succeeded(client, "arq")

    assert all(is_in_order(states, ["queued", "started", "succeeded"]) for states in seen.values()), seen
    events = events_by_id(stack)
    for kind, job_id in ids.items():
        assert [(e.kind, e.ok, e.attempt) for e in events[job_id]] == [(kind, True, 1)]
    mails = wait_for_mail(stack.mailbox, 1, timeout_s=10)
    assert f"<{ids['send_email']}@fbt.localhost>" in {m.message_id for m in mails}
    # JSON on the wire, never pickle: arq's stored result is plain JSON naming our job function.
    raw = redis.Redis.from_url(stack.settings.redis_url).get(result_key(ids["write_log"]))
    assert raw is not None
    stored = json.loads(raw)
    assert stored["f"] == "fbt.write_log" and stored["s"] is True
    assert stored["a"][0]["payload"] == {"message": "hello from arq"}


def test_a_transient_error_is_retried_with_backoff_then_failed(stack: WorkerEnv) -> None:
    backend = ArqBackend(stack.settings)
    # A missing upload is a FileNotFoundError, an OSError: transient by fbt_tasks.retry.
    payload = {"source": "no-such-upload.png", "target_width": 8, "target_height": 8, "output": "x.jpg"}
    job = Job(kind="resize_image", payload=payload)
    try:
        backend.enqueue(job, None)  # type: ignore[arg-type]  # ignored by broker runners
        wait_until(lambda: backend.status(job.id) == JobState.failed, 60, "the job to fail for good")
    finally:
        backend.close()
    events = events_by_id(stack)[job.id]
    # Safe queue config: arq's Retry after attempts 1 and 2 (1 s, 2 s), and the third attempt is final.
    assert [e.attempt for e in events] == [1, 2, 3]
    assert not any(e.ok for e in events)
    assert all(e.error and e.error.startswith("FileNotFoundError") for e in events)
    stored = loads(redis.Redis.from_url(stack.settings.redis_url).get(result_key(job.id)) or b"{}")
    assert stored["s"] is False and stored["r"].startswith("FileNotFoundError")


def test_a_permanent_error_is_not_retried(stack: WorkerEnv) -> None:
    backend = ArqBackend(stack.settings)
    job = Job(kind="write_log", payload={"unexpected": "argument"})
    try:
        backend.enqueue(job, None)  # type: ignore[arg-type]
        wait_until(lambda: backend.status(job.id) == JobState.failed, 60, "the job to fail")
    finally:
        backend.close()
    events = events_by_id(stack)[job.id]
    assert [(e.attempt, e.ok) for e in events] == [(1, False)]
    assert events[0].error is not None and "TypeError" in events[0].error


def test_a_delayed_job_waits_in_the_queue_then_runs(stack: WorkerEnv) -> None:
    backend = ArqBackend(stack.settings)
    job = Job(kind="notify", payload={"user": "later"})
    try:
        backend.enqueue(job, None, delay_s=2.0)  # type: ignore[arg-type]
        client = redis.Redis.from_url(stack.settings.redis_url)
        assert client.zscore(QUEUE_NAME, job.id) is not None and client.exists(job_key(job.id))
        assert backend.status(job.id) == JobState.queued
        wait_until(lambda: backend.status(job.id) == JobState.succeeded, 30, "the delayed job to run")
    finally:
        backend.close()
    [event] = events_by_id(stack)[job.id]
    assert event.ok and event.started_at - event.enqueued_at >= 2.0


def test_healthcheck_modules_see_the_worker(stack: WorkerEnv) -> None:
    for module in ("fbt_arq.health", "fbt_tasks.health"):
        check = subprocess.run(
            [sys.executable, "-m", module], env=stack.env, capture_output=True, timeout=30, check=False
        )
        assert check.returncode == 0, (module, check.stdout + check.stderr)


def test_sigterm_lets_the_running_job_finish_then_the_worker_exits(
    tmp_path: Path, redis_server: RedisServer, smtp_sink: tuple[int, Path]
) -> None:
    # Database 13: the module's worker listens on database 12 and must not take this job.
    own = make_env(tmp_path, on_db(redis_server.url, 13), smtp_sink)
    backend = ArqBackend(own.settings)
    # About a second of CPU: long enough to still be running when SIGTERM arrives.
    slow = Job(
        kind="resize_image", payload={**SMALL_RESIZE, "width": 6000, "height": 4000, "output": "slow.jpg"}
    )
    try:
        with running_worker(own) as worker:
            backend.enqueue(slow, None)  # type: ignore[arg-type]
            wait_until(
                lambda: backend.status(slow.id) == JobState.started, 30, "the slow job to start", worker
            )
            root = psutil.Process(worker.pid)
            tree = [root, *root.children(recursive=True)]
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=60) == 0
            assert not [p.pid for p in tree if is_alive(p)]
        # job_completion_wait (safe): the job finished instead of being cancelled and requeued.
        assert backend.status(slow.id) == JobState.succeeded
        assert [e.ok for e in events_by_id(own)[slow.id]] == [True]
        # A clean shutdown deletes arq's health-check key, so the healthcheck turns unhealthy at once.
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
                client.app.state.backend.enqueue(Job(kind="notify", payload={"user": "x"}), None)
            assert not worker_ready(down.settings)
            server.start()
            assert client.post("/log/?msg=back", headers=AUTH).status_code == 200


def test_safe_configuration_redelivers_within_a_run_and_defaults_do_not() -> None:
    bound = load_runner("arq").faults.redelivery_bound_s
    safe = bound(describe_runner(Settings(backend="arq", queue_config="safe")))
    defaults = bound(describe_runner(Settings(backend="arq", queue_config="defaults")))
    assert safe is not None and 0 < safe <= FULL.patience_s
    assert defaults is not None and defaults > FULL.patience_s


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkilled_worker_delivers_every_email_exactly_once(tmp_path: Path) -> None:
    """The fault harness's kill-mid-send cell: SIGKILL the worker tree mid-send, start it again."""
    run = run_cell(Cell("arq", "safe", "kill-worker"), KILL_MID_SEND, tmp_path)
    copies = deliveries(run.mailbox)
    assert len(run.accepted) == KILL_MID_SEND.n, run.record["notes"]
    # The kill really interrupted a send: a lease of a cut-off attempt was left in Redis.
    assert run.record["in_flight_at_fault"] >= 1, run.record
    # Nothing lost, nothing still held in Redis, nothing failed; no email twice.
    assert (run.record["lost"], run.record["held"], run.record["failed"]) == (0, 0, 0), run.record
    assert run.record["duplicate_effects"] == 0 and run.record["duplicates"] == [], run.record
    assert not [job_id for job_id in run.accepted if copies[job_id] == 0]
    assert not {job_id: n for job_id, n in copies.items() if n > 1}
    # The interrupted job ran again once its in-progress key expired; the guard kept it to one email.
    assert run.record["reexecuted"] >= 1, run.record
    assert run.record["mechanism"], run.record
