"""Every broker runner's fidelity reference drains real jobs through its library alone.

The reference is the library's own minimal worker (``fbt_tasks.reference``): its CLI, its own enqueue, a
stdlib task. Each runner's reference drains N jobs exactly once on a private Redis (and on a private
RabbitMQ node where the runner runs there, in the slow pass), through the harness's own
``reference_drain``; and its worker module imports no project code but ``fbt_tasks.reference_task``, nor
Pillow (pydantic may come with a library: taskiq's messages are pydantic models).
"""

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from fbt_bench.scenarios.reference import fidelity, reference_drain
from fbt_devstack.rabbitmq_server import RabbitMQServer
from fbt_devstack.rabbitmq_tools import missing_binary_reason
from fbt_devstack.redis_server import RedisServer
from fbt_tasks.reference import JSONValue, Reference
from fbt_tasks.registry import configure, installed_runners, load_runner
from fbt_tasks.runner import QUEUE_CONFIG_NAMES
from fbt_tasks.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

BROKER_RUNNERS = tuple(name for name in installed_runners() if not load_runner(name).runs_in_api)
RABBITMQ_RUNNERS = tuple(name for name in BROKER_RUNNERS if "rabbitmq" in load_runner(name).brokers)
N = 40
# The project's modules a reference worker may load: the stdlib task and the packages that hold it.
ALLOWED_PROJECT_MODULES = {"fbt_tasks", "fbt_tasks.reference_task"}


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(workdir=tmp_path / "redis") as server:
        yield server


def settings_for(runner: str, redis: RedisServer, tmp: Path, **extra: object) -> Settings:
    return configure(
        Settings(
            backend=runner,
            redis_url=redis.url,
            ledger_file=tmp / "ledger.jsonl",
            log_file=tmp / "log.txt",
            worker_processes=2,
            worker_threads=2,
            **extra,  # type: ignore[arg-type]
        )
    )


def drain_exactly_once(
    reference: Reference,
    settings: Settings,
    redis: RedisServer,
    tmp: Path,
    options: Mapping[str, JSONValue] | None = None,
) -> None:
    drained = reference_drain(
        reference,
        settings,
        tmp / "reference",
        N,
        broker_pids=[redis.pid] if redis.pid else [],
        drain_timeout_s=120,
        stall_timeout_s=60,
        options=options,
    )
    assert (drained.completed, drained.duplicated) == (N, 0)
    assert drained.drained_per_s > 0
    lines = (tmp / "reference" / "reference-log.txt").read_text().splitlines()
    assert len(lines) == N


@pytest.mark.parametrize("config", QUEUE_CONFIG_NAMES)
@pytest.mark.parametrize("runner", BROKER_RUNNERS)
def test_reference_drains_every_job_once_on_redis(
    runner: str, config: str, private_redis: RedisServer, tmp_path: Path
) -> None:
    settings = settings_for(runner, private_redis, tmp_path, queue_config=config)
    reference = load_runner(runner).reference(settings)
    assert reference is not None, f"{runner} has no fidelity reference"
    assert len(reference.workers) >= 1 and reference.layout
    json.dumps(dict(reference.options))  # crosses a process boundary as JSON
    drain_exactly_once(reference, settings, private_redis, tmp_path)


@pytest.mark.parametrize("runner", BROKER_RUNNERS)
def test_reference_without_the_job_status_writes_drains_every_job_once(
    runner: str, private_redis: RedisServer, tmp_path: Path
) -> None:
    settings = settings_for(runner, private_redis, tmp_path)
    reference = load_runner(runner).reference(settings)
    assert reference is not None
    if reference.without_status_writes is None:
        pytest.skip(f"{runner}'s safe config adds no job-status writes the library lacks")
    assert dict(reference.without_status_writes) != dict(reference.options)
    drain_exactly_once(reference, settings, private_redis, tmp_path, reference.without_status_writes)


@pytest.mark.slow
@pytest.mark.parametrize("runner", RABBITMQ_RUNNERS)
def test_reference_drains_every_job_once_on_rabbitmq(
    runner: str, private_redis: RedisServer, tmp_path: Path
) -> None:
    reason = missing_binary_reason()
    if reason is not None:
        pytest.skip(reason)
    with RabbitMQServer() as rabbit:
        settings = settings_for(runner, private_redis, tmp_path, broker="rabbitmq", amqp_url=rabbit.url)
        reference = load_runner(runner).reference(settings)
        assert reference is not None
        drain_exactly_once(reference, settings, private_redis, tmp_path)


@pytest.mark.parametrize("runner", BROKER_RUNNERS)
def test_reference_worker_path_holds_no_project_code(runner: str) -> None:
    module = f"fbt_{runner}.reference"
    probe = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('fbt_') or m == 'PIL')))"
    )
    loaded = set(
        json.loads(
            subprocess.run([sys.executable, "-c", probe], capture_output=True, check=True, text=True).stdout
        )
    )
    # Its own package's modules may configure the library (arq's JSON serializer in fbt_arq.wire): any shared
    # project code they imported would show up here as another fbt_ module.
    own = {m for m in loaded if m == f"fbt_{runner}" or m.startswith(f"fbt_{runner}.")}
    assert loaded - own <= ALLOWED_PROJECT_MODULES, f"{module} loads {sorted(loaded - own)}"


def test_fidelity_is_project_over_reference() -> None:
    assert fidelity(90.0, 100.0) == 0.9
    assert fidelity(10.0, 0.0) is None
