"""What each runner is measured on: the same API, uvicorn settings and slot budget for every runner.

Local mode (the default) starts a fresh devstack ``Stack`` per runner and repeat: embedded Redis on a free
port, the SMTP sink with the scenario's per-message delay, the API under uvicorn and the runner's workers,
and tears it all down afterwards. External mode measures a deployment someone else runs: when any
``API_URL_<RUNNER>`` is set, nothing is spawned and only those runners are measured, against that
deployment's REDIS_URL and LEDGER_FILE (which must be readable from here).
"""

import os
import secrets
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fbt_bench.measuring.sampler import ProcSet, own_process
from fbt_bench.profiles import Profile
from fbt_devstack import netns
from fbt_devstack.processes import sigint_deferred
from fbt_devstack.rabbitmq_tools import rabbitmq_unavailable_reason
from fbt_devstack.stack import Stack
from fbt_devstack.stack_env import external_url_var, settings_env
from fbt_tasks.registry import configure, installed_runners, load_runner, system_key
from fbt_tasks.runner import BROKER_TITLES, QueueConfigName
from fbt_tasks.settings import Settings

GROUPS_TTL_S = 1.0


class Deployment(Protocol):
    """What the scenarios drive: a runner's stack, someone else's deployment, or a floor behind the same API."""

    # Read-only: LocalDeployment derives most of these from its stack as properties.
    @property
    def runner(self) -> str: ...
    @property
    def topology(self) -> str: ...  # "local", "hosts" or "external"
    @property
    def api_url(self) -> str: ...
    @property
    def api_key(self) -> str: ...
    @property
    def redis_url(self) -> str: ...
    @property
    def ledger_path(self) -> Path: ...
    @property
    def settings(self) -> Settings: ...

    @property
    def broker(self) -> str: ...

    @property
    def runs_in_api(self) -> bool: ...

    def groups(self) -> list[ProcSet]: ...

    def probe_env(self) -> dict[str, str]:
        """The environment of a process that enqueues without HTTP (the runner's settings)."""
        ...

    def probe_args(self) -> list[str]:
        """Extra arguments for ``fbt_bench.scenarios.enqueue_probe enqueue`` (a floor's own enqueue)."""
        ...

    def stop_workers(self) -> None: ...

    def start_workers(self) -> None: ...

    def pids(self) -> list[int]:
        """Every process of the system under test (for CPU placement)."""
        ...


# Brokers a local stack can only have when AMQP_URL or an OS binary provides them: why each one is missing.
BROKER_AVAILABILITY = {"rabbitmq": rabbitmq_unavailable_reason}


@dataclass(frozen=True)
class System:
    """One measured configuration: a runner on one of its brokers."""

    runner: str
    broker: str

    @property
    def key(self) -> str:
        """Its key in results.json's ``runners``: the runner's name on its default broker."""
        return system_key(self.runner, self.broker)


def plan_systems(runners: tuple[str, ...], brokers: tuple[str, ...] | None) -> tuple[list[System], list[str]]:
    """Every runner on each of its brokers among ``brokers`` (None: all), and one line per broker skipped
    because this machine cannot provide it (say why and how to get it)."""
    systems: list[System] = []
    skipped: dict[tuple[str, str], list[str]] = {}
    for runner in runners:
        for broker in load_runner(runner).brokers:
            if brokers is not None and broker not in brokers and broker != "none":
                continue
            reason = BROKER_AVAILABILITY[broker]() if broker in BROKER_AVAILABILITY else None
            if reason is not None:
                skipped.setdefault((broker, reason), []).append(runner)
                continue
            systems.append(System(runner, broker))
    warnings = [
        f"{', '.join(names)} on {BROKER_TITLES.get(broker, broker)} not measured: {reason}"
        for (broker, reason), names in skipped.items()
    ]
    return systems, warnings


def runner_settings(
    runner: str, profile: Profile, config: QueueConfigName, broker: str | None = None
) -> Settings:
    """Identical API and uvicorn settings for every runner; only BACKEND (and BROKER) differ."""
    return configure(
        Settings(
            backend=runner,
            broker=broker,
            # A free port for every stack: other engineers' APIs and test runs share this machine.
            port=0,
            api_key=secrets.token_hex(16),
            worker_processes=profile.worker_processes,
            worker_threads=profile.worker_threads,
            # The equal budget: BackgroundTasks' slots are this threadpool's tokens (anyio's default would be 40).
            # The broker runners' API gets the same pool, so the API itself is configured identically for all.
            api_threadpool=profile.slots,
            # Logging every request would cost the API the same CPU for all runners and measure nothing.
            access_log=False,
            queue_config=config,
        )
    )


@dataclass
class LocalDeployment:
    runner: str
    stack: Stack
    topology: str = "local"
    # The namespaces of the "hosts" topology; None on one loopback.
    hosts: netns.Hosts | None = None

    @property
    def settings(self) -> Settings:
        """The settings in force: real ports, URLs and paths of this stack."""
        return self.stack.settings

    @property
    def api_url(self) -> str:
        return str(self.stack.api_url)

    @property
    def api_key(self) -> str:
        return str(self.stack.api_key)

    @property
    def redis_url(self) -> str:
        return str(self.stack.redis_url)

    @property
    def ledger_path(self) -> Path:
        return Path(self.stack.ledger_path)

    _cached: tuple[float, list[ProcSet]] | None = None

    @property
    def broker(self) -> str:
        return self.stack.settings.broker_name

    @property
    def runs_in_api(self) -> bool:
        return self.stack.runner.runs_in_api

    def probe_env(self) -> dict[str, str]:
        return {**os.environ, **self.stack.env}

    def probe_args(self) -> list[str]:
        return []

    def stop_workers(self) -> None:
        self.stack.stop_workers()
        self._cached = None

    def start_workers(self) -> None:
        self.stack.start_workers()
        self._cached = None

    def pids(self) -> list[int]:
        return [pid for pids in self.stack.groups().values() for pid in pids]

    def groups(self) -> list[ProcSet]:
        # Stack.groups() walks each process tree; the sampler re-expands the trees itself every sample,
        # so knowing the roots is enough and a second-old answer saves the machine a few scans.
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] > GROUPS_TTL_S:
            found = [ProcSet(name, list(pids)) for name, pids in self.stack.groups().items()]
            self._cached = (now, [*found, own_process()])
        return self._cached[1]


@dataclass
class ExternalDeployment:
    runner: str
    api_url: str
    api_key: str
    redis_url: str
    ledger_path: Path
    settings: Settings
    topology: str = "external"

    def groups(self) -> list[ProcSet]:
        # Someone else's processes: only the load generator here is ours to measure.
        return [own_process()]

    @property
    def broker(self) -> str:
        return self.settings.broker_name

    @property
    def runs_in_api(self) -> bool:
        return load_runner(self.runner).runs_in_api

    def probe_env(self) -> dict[str, str]:
        return {**os.environ, **settings_env(self.settings)}

    def probe_args(self) -> list[str]:
        return []

    def stop_workers(self) -> None:
        raise NotImplementedError("external topology: someone else's workers cannot be stopped from here")

    def start_workers(self) -> None:
        raise NotImplementedError("external topology: someone else's workers cannot be started from here")

    def pids(self) -> list[int]:
        return []


@contextmanager
def local_deployment(
    runner: str, profile: Profile, config: QueueConfigName, workdir: Path, broker: str | None = None
) -> Iterator[LocalDeployment]:
    """Start the whole stack for ``runner`` on ``broker``; always tear it down, even on Ctrl-C or an error."""
    settings = runner_settings(runner, profile, config, broker)
    stack = Stack(
        settings, workdir=workdir, start_redis=True, start_smtp=True, smtp_delay_ms=profile.smtp_delay_ms
    )
    try:
        stack.start()
        yield LocalDeployment(runner=runner, stack=stack)
    finally:
        with sigint_deferred():
            stack.stop()


# The hosts of the "hosts" topology (fbt_devstack.netns): the delay sits on the broker's link.
HOST_ROLES = ("api", "broker", "workers")


@contextmanager
def hosts_deployment(
    runner: str, profile: Profile, config: QueueConfigName, workdir: Path, broker: str | None, rtt_ms: float
) -> Iterator[LocalDeployment]:
    """The stack for ``runner`` across three network namespaces with ``rtt_ms`` to the broker; the
    namespaces, veths and bridge are removed afterwards, even on Ctrl-C or an error."""
    settings = runner_settings(runner, profile, config, broker)
    with netns.hosts(HOST_ROLES, rtt_ms) as made:
        stack = Stack(
            settings,
            workdir=workdir,
            start_redis=True,
            start_smtp=True,
            smtp_delay_ms=profile.smtp_delay_ms,
            hosts=made,
        )
        try:
            stack.start()
            yield LocalDeployment(runner=runner, stack=stack, topology="hosts", hosts=made)
        finally:
            with sigint_deferred():
                stack.stop()


def external_urls(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The installed runners whose API_URL_<RUNNER> is set; empty means local mode."""
    return {
        runner: env[external_url_var(runner)].rstrip("/")
        for runner in installed_runners()
        if env.get(external_url_var(runner))
    }


@contextmanager
def external_deployment(
    runner: str, profile: Profile, config: QueueConfigName, env: Mapping[str, str] = os.environ
) -> Iterator[ExternalDeployment]:
    urls = external_urls(env)
    missing = [var for var in ("REDIS_URL", "LEDGER_FILE") if not env.get(var)]
    if missing:
        raise RuntimeError(f"external mode needs {' and '.join(missing)} of the deployment being measured")
    settings = runner_settings(runner, profile, config).model_copy(
        update={"redis_url": env["REDIS_URL"], "ledger_file": Path(env["LEDGER_FILE"])}
    )
    yield ExternalDeployment(
        runner=runner,
        api_url=urls[runner],
        api_key=env.get("API_KEY") or settings.effective_api_key,
        redis_url=env["REDIS_URL"],
        ledger_path=Path(env["LEDGER_FILE"]),
        settings=settings,
    )
