"""Celery and Dramatiq on RabbitMQ (BROKER=rabbitmq), end to end, on a private node this module starts.

One node serves the whole module (a boot costs seconds of CPU). Every kind goes through the API to a real
``fbt-worker-<runner>`` consuming from RabbitMQ, with results in Redis beside it; then the fault harness's
kill-worker cell SIGKILLs each worker mid-burst: the safe configuration loses nothing, because RabbitMQ
requeues a dead consumer's unacked messages when its connection closes. The node stays private: its own
ports, never the system one on 5672. Skipped only where rabbitmq-server is not installed (CI has it).
"""

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from runner_support import (
    KILL_MID_SEND,
    assert_each_kind_ran_once,
    every_kind_until_succeeded,
    make_worker_env,
    on_db,
    running_worker,
)

from fbt_api.app import create_app
from fbt_bench.faults.model import Cell, FaultRun
from fbt_bench.faults.observe import deliveries
from fbt_bench.faults.run import run_cell
from fbt_devstack.rabbitmq_server import RabbitMQServer
from fbt_devstack.rabbitmq_tools import AMQP_URL_ENV, missing_binary_reason
from fbt_devstack.redis_server import RedisServer
from fbt_tasks.jobs import JobState
from fbt_tasks.registry import configure, load_runner
from fbt_tasks.settings import Settings

# Safety nets only: generous, never a performance assertion.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

RUNNERS = ("celery", "dramatiq")
# One database of the module's own Redis per runner, so neither worker drains the other's jobs.
REDIS_DB = {"celery": 0, "dramatiq": 1}
PARAMS = KILL_MID_SEND


@pytest.fixture(scope="module")
def rabbit() -> Iterator[RabbitMQServer]:
    reason = missing_binary_reason()
    if reason is not None:
        pytest.skip(reason)
    with RabbitMQServer() as server:
        yield server


@pytest.mark.parametrize("runner", RUNNERS)
def test_every_kind_runs_through_rabbitmq_and_reads_succeeded(
    runner: str,
    rabbit: RabbitMQServer,
    redis_server: RedisServer,
    smtp_sink: tuple[int, Path],
    tmp_path: Path,
) -> None:
    env = make_worker_env(
        runner,
        tmp_path,
        on_db(redis_server.url, REDIS_DB[runner]),
        smtp_sink,
        BROKER="rabbitmq",
        AMQP_URL=rabbit.url,
    )
    plugin = load_runner(runner)
    with running_worker(env, plugin.worker_ready, f"a {runner} worker consuming from RabbitMQ"):
        with TestClient(create_app(env.settings)) as client:
            ids, seen = every_kind_until_succeeded(client, runner)
    assert_each_kind_ran_once(env, ids, seen)
    described = plugin.backend(env.settings)
    try:
        facts = described.describe()
    finally:
        described.close()
    assert facts["broker_name"] == "rabbitmq" and "Redis" in str(facts["result_backend"])


def test_celery_defaults_on_rabbitmq_keep_no_result_backend(
    rabbit: RabbitMQServer, redis_server: RedisServer, smtp_sink: tuple[int, Path], tmp_path: Path
) -> None:
    # Celery out of the box on RabbitMQ: no result backend (it used to keep Redis for /jobs; the issue asked
    # for Celery's own default). /jobs reads queued for any id, and no result keys are watched or counted.
    env = make_worker_env(
        "celery",
        tmp_path,
        on_db(redis_server.url, REDIS_DB["celery"]),
        smtp_sink,
        BROKER="rabbitmq",
        AMQP_URL=rabbit.url,
        QUEUE_CONFIG="defaults",
    )
    plugin = load_runner("celery")
    backend = plugin.backend(env.settings)
    try:
        facts = backend.describe()
        assert str(facts["result_backend"]).startswith("none") and "results in Redis" not in facts["broker"]
        assert backend.status("0" * 32) == JobState.queued
    finally:
        backend.close()
    assert not any("results" in where for where in plugin.faults.message_locations(env.settings))
    assert plugin.faults.holdings(env.settings, {"0" * 32})["failed"] == 0


def test_settings_refuse_rabbitmq_for_a_redis_only_runner() -> None:
    with pytest.raises(ValueError, match="does not run on BROKER=rabbitmq"):
        configure(Settings(backend="rq", broker="rabbitmq"))


@pytest.fixture(scope="module")
def killed_runs(rabbit: RabbitMQServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, FaultRun]:
    """The fault harness's kill-worker cell, safe config, both runners at once on the module's node."""
    root = tmp_path_factory.mktemp("rabbitmq-faults")
    with pytest.MonkeyPatch.context() as patch:
        # AMQP_URL: the cells' stacks use this node instead of each booting its own.
        patch.setenv(AMQP_URL_ENV, rabbit.url)
        with ThreadPoolExecutor(max_workers=len(RUNNERS)) as pool:
            futures = {
                runner: pool.submit(
                    run_cell, Cell(runner, "safe", "kill-worker", broker="rabbitmq"), PARAMS, root / runner
                )
                for runner in RUNNERS
            }
            return {runner: future.result() for runner, future in futures.items()}


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_killed_worker_loses_nothing_on_rabbitmq_in_the_safe_config(
    runner: str, killed_runs: dict[str, FaultRun]
) -> None:
    run = killed_runs[runner]
    record = run.record
    assert record["broker"] == "rabbitmq" and record["configuration"]["broker_name"] == "rabbitmq"
    copies = deliveries(run.mailbox)
    accepted = Counter(run.accepted)
    lost = [job_id for job_id in accepted if copies[job_id] == 0]
    assert not lost and record["lost"] == 0, record["notes"]
    assert "RabbitMQ requeued" in record["mechanism"], record["mechanism"]


def test_a_broker_this_machine_lacks_is_skipped_and_said_why_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fbt_bench import topology

    reason = "no RabbitMQ: rabbitmq-server is not installed; apt install rabbitmq-server"
    monkeypatch.setitem(topology.BROKER_AVAILABILITY, "rabbitmq", lambda: reason)
    systems, warnings = topology.plan_systems(("celery", "dramatiq", "inprocess", "rq"), None)
    assert {(s.runner, s.broker) for s in systems} == {
        ("celery", "redis"),
        ("dramatiq", "redis"),
        ("inprocess", "none"),
        ("rq", "redis"),
    }
    assert warnings == [f"celery, dramatiq on RabbitMQ not measured: {reason}"]
    only_redis, none_skipped = topology.plan_systems(("celery",), ("redis",))
    assert [s.key for s in only_redis] == ["celery"] and none_skipped == []
