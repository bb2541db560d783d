"""The taskiq runner end to end: a real Redis, the real ``fbt-worker-taskiq`` (``taskiq worker``), a real SMTP sink.

One worker (safe queue config, Streams broker) serves the happy path and the retry path; the defaults
(ListQueueBroker), SIGTERM and the 503 path get their own short-lived worker or Redis. The kill-worker cell
uses the fault harness on a stack of its own and takes minutes (slow, CI's second step).
"""

import asyncio
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
    assert_retried_then_failed,
    events_by_id,
    every_kind_runs_once,
    module_worker,
    on_db,
    sigterm_and_wait,
    slow_resize,
    wait_until,
)

from fbt_bench.faults.model import Cell, FaultRun
from fbt_bench.faults.observe import deliveries
from fbt_bench.faults.run import run_cell
from fbt_devstack.redis_server import RedisServer
from fbt_taskiq.backend import TaskiqBackend
from fbt_taskiq.idle_reclaim import IdleReclaimStreamBroker
from fbt_taskiq.queue_configs import CONSUMER_GROUP, QUEUE_NAME
from fbt_taskiq.worker import worker_command
from fbt_tasks.jobs import Job, JobState
from fbt_tasks.registry import configure
from fbt_tasks.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

# Databases of the session Redis no other test module uses; the health check reads CLIENT LIST per database.
# Two taskiq processes (make_worker_env's sizing), one async task each; the safe config's Streams broker.
RUNNER = BrokerRunner("taskiq")
stack = module_worker(RUNNER)


def test_worker_command_is_taskiqs_cli_with_the_slots_and_the_ack_type() -> None:
    safe = worker_command(configure(Settings(backend="taskiq", worker_processes=3, worker_threads=5)))
    assert safe[1:3] == ["worker", "fbt_taskiq.app:broker"]
    assert safe[safe.index("--workers") + 1] == "3" and safe[safe.index("--max-async-tasks") + 1] == "5"
    assert safe[safe.index("--ack-type") + 1] == "when_saved"
    defaults = worker_command(configure(Settings(backend="taskiq", queue_config="defaults")))
    assert "--ack-type" not in defaults


def test_every_kind_runs_and_its_state_progresses_to_succeeded(stack: WorkerEnv) -> None:
    # taskiq keeps no running state: a job reads queued until its result is saved.
    ids = every_kind_runs_once(stack, order=("queued", "succeeded"))
    # JSON on the wire, never pickle: each stream entry is taskiq's JSON message naming our task.
    client = redis.Redis.from_url(stack.settings.redis_url)
    try:
        entries = [json.loads(fields[b"data"]) for _, fields in client.xrange(QUEUE_NAME)]
        # Every entry was acknowledged by the consumer group once its result was saved.
        assert client.xpending(QUEUE_NAME, CONSUMER_GROUP)["pending"] == 0
    finally:
        client.close()
    logged = next(e for e in entries if e["task_id"] == ids["write_log"])
    assert logged["task_name"] == "fbt.write_log" and logged["args"][0]["payload"] == {
        "message": "hello from taskiq"
    }


def test_a_failing_job_is_retried_then_failed(stack: WorkerEnv) -> None:
    backend = TaskiqBackend(stack.settings)
    job = Job(kind="resize_image", payload=MISSING_UPLOAD)
    try:
        backend.enqueue(job)
        # Safe queue config: SimpleRetryMiddleware re-sends the transient error (an OSError) twice.
        wait_until(lambda: backend.status(job.id) == JobState.failed, 60, "the job to fail for good")
    finally:
        backend.close()
    assert_retried_then_failed(events_by_id(stack)[job.id])


def test_a_delay_is_refused_with_the_reason(stack: WorkerEnv) -> None:
    backend = TaskiqBackend(stack.settings)
    try:
        with pytest.raises(ValueError, match="taskiq scheduler"):
            backend.enqueue(Job(kind="write_log", payload={"message": "later"}), delay_s=5)
    finally:
        backend.close()


def test_the_defaults_list_broker_runs_a_job_and_sigterm_lets_a_running_job_finish(
    tmp_path: Path, redis_server: RedisServer, smtp_sink: tuple[int, Path]
) -> None:
    own = RUNNER.env(tmp_path, on_db(redis_server.url, OWN_DB), smtp_sink, QUEUE_CONFIG="defaults")
    backend = TaskiqBackend(own.settings)
    quick = Job(kind="write_log", payload={"message": "from the list"})
    slow = slow_resize()
    try:
        with RUNNER.worker(own) as worker:
            backend.enqueue(quick)
            wait_until(lambda: backend.status(quick.id) == JobState.succeeded, 30, "the list job", worker)
            backend.enqueue(slow)
            wait_until(lambda: _started(own, slow), 30, "the slow job to be taken", worker)
            sigterm_and_wait(worker)
        assert backend.status(slow.id) == JobState.succeeded
        assert [e.ok for e in events_by_id(own)[slow.id]] == [True]
        # A clean shutdown closes the worker's connections, so the healthcheck turns unhealthy at once.
        assert not RUNNER.ready(own)
    finally:
        backend.close()


def _started(own: WorkerEnv, job: Job) -> bool:
    """The list broker removed the job from Redis: a worker holds it (BRPOP is the only way out)."""
    client = redis.Redis.from_url(own.settings.redis_url)
    try:
        return client.llen(QUEUE_NAME) == 0 and job.id not in events_by_id(own)
    finally:
        client.close()


def test_an_idle_worker_reclaims_a_dead_consumers_message_without_new_traffic(
    redis_server: RedisServer,
) -> None:
    """A message delivered to a consumer that died stays pending; with no new message ever enqueued, taskiq-redis
    alone would never reclaim it. The idle reclaim's empty reads do, once it is idle past the timeout."""
    url, stream, group = on_db(redis_server.url, OWN_DB), "fbt-test-idle-reclaim", "g"
    client = redis.Redis.from_url(url)
    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
        client.xadd(stream, {b"data": b"orphan"})
        # A consumer that reads the message and dies before acking it.
        assert client.xreadgroup(group, "dead-consumer", {stream: ">"}, count=1)
        data = asyncio.run(_first_message(url, stream, group))
        assert data == b"orphan"
        owner = client.xpending_range(stream, group, "-", "+", 10)
        assert [p["consumer"] for p in owner] == [b"live-consumer"]
    finally:
        client.delete(stream, f"autoclaim:{group}:{stream}")
        client.close()


async def _first_message(url: str, stream: str, group: str) -> bytes:
    broker = IdleReclaimStreamBroker(
        url,
        reclaim_interval_s=0.2,
        queue_name=stream,
        consumer_group_name=group,
        consumer_name="live-consumer",
        idle_timeout=200,
        xread_block=100,
        unacknowledged_lock_timeout=5.0,
    )
    await broker.startup()
    try:
        listening = broker.listen()
        message = await asyncio.wait_for(anext(listening), 60)
        await listening.aclose()
        return bytes(message.data)
    finally:
        await broker.shutdown()


def test_broker_down_gives_503_and_bad_health(tmp_path: Path, smtp_sink: tuple[int, Path]) -> None:
    RUNNER.broker_down(tmp_path, smtp_sink)


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory: pytest.TempPathFactory) -> FaultRun:
    """The fault harness's kill-worker cell (one slot, the kill mid-send), safe config, on a stack of its own."""
    return run_cell(
        Cell("taskiq", "safe", "kill-worker"), KILL_MID_SEND, tmp_path_factory.mktemp("taskiq-kill")
    )


# About two minutes: the watch lasts past the 60 s idle timeout the safe config promises.
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_killed_workers_messages_stay_pending_and_nothing_runs_twice(killed_run: FaultRun) -> None:
    """What taskiq-redis 1.2's Streams broker does, measured: the killed worker's messages are never lost from
    Redis (they stay pending in the consumer group) and no email goes out twice."""
    record = killed_run.record
    assert len(killed_run.accepted) == KILL_MID_SEND.n, record["notes"]
    assert record["in_flight_at_fault"] >= 1, record
    assert record["lost"] == 0 and record["failed"] == 0, record
    assert record["duplicate_effects"] == 0 and record["duplicates"] == [], record
    assert not {job_id: n for job_id, n in deliveries(killed_run.mailbox).items() if n > 1}


# The safe config's idle reclaim (fbt_taskiq.idle_reclaim) brings the killed worker's messages back once idle past
# the timeout although nothing new is enqueued after the kill's probe (issue #22).
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkilled_worker_delivers_every_email_exactly_once(killed_run: FaultRun) -> None:
    record = killed_run.record
    copies = deliveries(killed_run.mailbox)
    assert (record["lost"], record["held"], record["failed"]) == (0, 0, 0), record
    assert all(copies[job_id] == 1 for job_id in killed_run.accepted), record
