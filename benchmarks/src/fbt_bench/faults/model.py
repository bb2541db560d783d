"""What a fault pass runs: its parameters, the cells (runner x broker x queue config x fault), the matrix."""

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fbt_tasks.runner import (
    QUEUE_CONFIG_NAMES,
    FaultName,
    QueueConfig,
    QueueConfigName,
    load_runner,
    system_key,
)

FAULTS: tuple[FaultName, ...] = ("kill-worker", "deploy", "broker-restart", "task-error")
# The order cells appear in: the library's out-of-the-box behaviour first, then what the project ships.
CONFIGS: tuple[QueueConfigName, ...] = ("defaults", "safe")


@dataclass(frozen=True, slots=True)
class FaultParams:
    n: int = 60  # emails per burst
    fault_after: int = 15  # deliveries before the fault is injected
    smtp_delay_ms: int = 100
    worker_processes: int = 1
    worker_threads: int = 2
    burst_concurrency: int = 4
    # The longest recovery bound we wait for; a configuration whose bound is longer is watched watch_s.
    patience_s: float = 150.0
    watch_s: float = 90.0
    # docker compose's stop_grace_period for the workers (compose.yaml): SIGKILL follows after this.
    deploy_grace_s: float = 30.0
    outage_s: float = 3.0
    outage_probe_hz: float = 10.0
    error_n: int = 5
    fail_first: int = 2
    # None keeps the setting's default; the exactly-once test shortens it (the send-once lease follows it).
    smtp_timeout_s: float | None = None
    parallel: int = 3
    # None: the slots, the benchmark's equal budget (for BackgroundTasks, the threadpool is the task slots).
    api_threadpool: int | None = None

    @property
    def slots(self) -> int:
        return self.worker_processes * self.worker_threads

    def with_overrides(self, *, n: int | None = None, parallel: int | None = None) -> "FaultParams":
        """A copy with a different burst size or parallelism (``None``: keep); the fault lands mid-burst."""
        n = n or self.n
        return replace(
            self, n=n, fault_after=min(self.fault_after, n // 2), parallel=parallel or self.parallel
        )


FULL = FaultParams()
# What `fbt-bench compare` adds: kill-worker only, a smaller burst, a shorter watch of the configurations
# that recover only after minutes or never.
SHORT = replace(FULL, n=30, fault_after=8, watch_s=30.0, parallel=4)


@dataclass(frozen=True, slots=True)
class Cell:
    runner: str
    config: QueueConfigName
    fault: FaultName
    # None: the runner's default (first) broker.
    broker: str | None = None

    @property
    def broker_name(self) -> str:
        return self.broker or load_runner(self.runner).brokers[0]

    @property
    def tag(self) -> str:
        return f"{system_key(self.runner, self.broker_name)}/{self.config}/{self.fault}"


def distinct_configs(
    runner: str, configs: tuple[QueueConfigName, ...] = CONFIGS, broker: str | None = None
) -> list[QueueConfig]:
    """The runner's configurations on ``broker`` among ``configs``, each object once (under its own name).

    A runner with nothing to configure maps every QUEUE_CONFIG name to one configuration: it runs once.
    """
    plugin = load_runner(runner)
    found: list[QueueConfig] = []
    for name in configs:
        config = plugin.queue_configs[broker or plugin.brokers[0]][name]
        if all(config is not seen and config.name != seen.name for seen in found):
            found.append(config)
    return found


def has_one_config(runner: str, broker: str | None = None) -> bool:
    """Whether every QUEUE_CONFIG name gives this runner the same configuration (no queue to configure)."""
    return len(distinct_configs(runner, QUEUE_CONFIG_NAMES, broker)) == 1


def matrix(
    runners: tuple[str, ...],
    configs: tuple[QueueConfigName, ...] = CONFIGS,
    faults: tuple[FaultName, ...] = FAULTS,
    brokers: tuple[str, ...] | None = None,
) -> list[Cell]:
    """Every cell: each runner on each of its brokers among ``brokers`` (None: all), in each of its
    distinct configurations among ``configs``, every fault."""
    cells = []
    for runner in runners:
        for broker in load_runner(runner).brokers:
            if brokers is not None and broker not in brokers and broker != "none":
                continue
            for config in distinct_configs(runner, configs, broker):
                cells.extend(Cell(runner, config.name, fault, broker) for fault in faults)
    return cells


@dataclass
class FaultRun:
    """One cell's record for results.json, and what a test needs to check it independently."""

    record: dict[str, Any]
    accepted: list[str]
    mailbox: Path


class Cancelled(RuntimeError):
    """The run was interrupted; the cell's stack is being torn down."""
