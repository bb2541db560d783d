"""The runner plugin contract (fbt_tasks.runner), checked on every runner installed under fbt.backends."""

import asyncio
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from fbt_devstack.redis_server import RedisServer
from fbt_tasks.jobs import Job
from fbt_tasks.registry import (
    UnknownRunner,
    UnsupportedBroker,
    configure,
    installed_runners,
    load_backend,
    load_runner,
    system_key,
)
from fbt_tasks.runner import NO_HOLDINGS, QUEUE_CONFIG_NAMES, Runner, pending, runner_record
from fbt_tasks.settings import BrokerUnresolved, Settings

RUNNERS = installed_runners()


def described(settings: Settings) -> dict[str, Any]:
    """The backend's describe(), inside an event loop as the API has one (BackgroundTasks ask anyio)."""
    backend = load_backend(settings)

    async def in_loop() -> dict[str, Any]:
        return backend.describe()

    try:
        return asyncio.run(in_loop())
    finally:
        backend.close()


def test_the_four_runners_are_installed() -> None:
    assert set(RUNNERS) >= {"inprocess", "celery", "rq", "dramatiq"}


@pytest.mark.parametrize("name", RUNNERS)
def test_every_runner_is_a_runner_with_both_queue_configs_explained(name: str) -> None:
    runner = load_runner(name)
    assert isinstance(runner, Runner) and runner.name == name
    assert runner.display_name and runner.description and "\n" not in runner.description
    assert runner.brokers and set(runner.brokers) <= {"redis", "rabbitmq", "none"} and runner.distributions
    assert set(runner.queue_configs) == set(runner.brokers)
    for broker, configs in runner.queue_configs.items():
        assert set(configs) == set(QUEUE_CONFIG_NAMES), broker
        for config in configs.values():
            assert config.summary and config.max_attempts >= 1
            assert all(setting.why.strip() for setting in config.settings.values()), (broker, config.name)
            json.dumps(config.as_record())  # results.json must be able to hold it
    assert runner.faults.exhausted_to


@pytest.mark.parametrize("name", RUNNERS)
def test_worker_command_agrees_with_runs_in_api(name: str) -> None:
    runner = load_runner(name)
    settings = configure(Settings(backend=name))
    command = runner.worker_command(settings)
    assert (command is None) == runner.runs_in_api == (settings.broker_name == "none")
    if command is not None:
        assert (Path(sys.executable).parent / command[0]).exists(), f"{command[0]} is not installed"
    assert runner.slot_layout(settings)


@pytest.mark.parametrize("name", RUNNERS)
def test_safe_configuration_redelivers_within_a_finite_bound(name: str) -> None:
    runner = load_runner(name)
    for broker in runner.brokers:
        settings = configure(Settings(backend=name, broker=broker, queue_config="safe"))
        bound = runner.faults.redelivery_bound_s(described(settings))
        assert bound is not None and math.isfinite(bound)
        assert (bound == 0) == runner.runs_in_api
        assert described(settings).get("broker_name", broker) == broker


def test_broker_defaults_to_the_runners_first_and_an_unsupported_pair_is_refused() -> None:
    for name in RUNNERS:
        assert configure(Settings(backend=name)).broker_name == load_runner(name).brokers[0]
    assert configure(Settings(backend="celery", broker="rabbitmq")).broker_name == "rabbitmq"
    for backend, broker in (("rq", "rabbitmq"), ("inprocess", "redis")):
        with pytest.raises(UnsupportedBroker, match=f"BACKEND={backend} does not run on BROKER={broker}"):
            configure(Settings(backend=backend, broker=broker))  # type: ignore[arg-type]


def test_settings_are_plain_data_until_configured() -> None:
    """Reading the settings names no runner: an unknown BACKEND and an unset BROKER wait for configure."""
    settings = Settings(backend="bogus")
    with pytest.raises(BrokerUnresolved):
        _ = settings.broker_name
    with pytest.raises(UnknownRunner, match="BACKEND is not set"):
        configure(Settings(backend=""))


def test_runner_record_names_the_broker_and_its_configuration() -> None:
    for name in RUNNERS:
        runner = load_runner(name)
        for broker in runner.brokers:
            record = runner_record(runner, configure(Settings(backend=name, broker=broker)))
            assert record["broker"] == record["broker_name"] == broker
            assert record["queue_config"] == runner.queue_configs[broker]["safe"].as_record()
            assert system_key(name, broker) == (name if broker == runner.brokers[0] else f"{name}/{broker}")


def test_runner_record_is_json() -> None:
    for name in RUNNERS:
        settings = configure(Settings(backend=name))
        record = runner_record(load_runner(name), settings)
        assert json.loads(json.dumps(record))["display_name"] == load_runner(name).display_name


def test_in_process_has_one_configuration_for_both_names() -> None:
    configs = load_runner("inprocess").queue_configs["none"]
    assert configs["safe"] is configs["defaults"]
    assert "no queue to configure" in configs["safe"].summary


def test_an_unknown_backend_names_the_installed_runners() -> None:
    with pytest.raises(UnknownRunner) as caught:
        configure(Settings(backend="bogus"))
    assert "'bogus'" in str(caught.value) and all(name in str(caught.value) for name in RUNNERS)
    with pytest.raises(UnknownRunner, match="installed runners: "):
        load_runner("bogus")


@pytest.mark.parametrize("name", RUNNERS)
def test_holdings_of_a_fresh_redis_are_empty_and_a_dead_one_raises(name: str, tmp_path: Path) -> None:
    faults = load_runner(name).faults
    with RedisServer(workdir=tmp_path) as server:
        settings = configure(Settings(backend=name, redis_url=server.url))
        holdings = faults.holdings(settings, {"0" * 32})
        assert holdings == NO_HOLDINGS and pending(holdings) == 0
        if faults.message_locations(settings):
            # No worker runs here, so an enqueued job waits in the queue the fault model reads.
            backend = load_backend(settings)
            try:
                job = Job(kind="write_log", payload={"message": "held"})
                backend.enqueue(job)
            finally:
                backend.close()
            assert faults.holdings(settings, {job.id, "0" * 32}) == {**NO_HOLDINGS, "queued": 1}
    if faults.message_locations(settings):  # a runner with a broker cannot read a dead one
        with pytest.raises(redis.RedisError):
            faults.holdings(settings, {"0" * 32})


def test_generic_health_and_worker_entry_points_for_the_in_process_runner() -> None:
    env = {**os.environ, "BACKEND": "inprocess", "PORT": "1"}  # nothing listens on port 1
    health = subprocess.run(
        [sys.executable, "-m", "fbt_tasks.health"], env=env, capture_output=True, timeout=30, check=False
    )
    assert health.returncode == 1, health.stdout + health.stderr
    worker = subprocess.run(
        [str(Path(sys.executable).parent / "fbt-worker")],
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert worker.returncode == 2
    assert b"BackgroundTasks has no worker: tasks run inside the API" in worker.stderr
