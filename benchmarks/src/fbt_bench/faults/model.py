"""What a fault pass runs: its parameters, the cells (runner x broker x queue config x fault), the matrix."""

import random
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, get_args

from fbt_bench.profiles import PROFILES
from fbt_tasks.registry import load_runner, system_key
from fbt_tasks.runner import BROKER_TITLES, QUEUE_CONFIG_NAMES, FaultName, QueueConfig, QueueConfigName

# Every fault the runner plugin protocol names, in its order: one list, read off the type.
FAULTS: tuple[FaultName, ...] = get_args(FaultName)
# Faults that need a broker: a runner whose tasks run in the API has no Redis queue to crash, fill, delay or
# poison. They run in the safe configuration only: the fsync policy is Redis's, not the runner's; a memory
# limit is the operator's; a malformed message takes the same path whatever the ack and retry settings; and
# 2x Celery's default 1 h visibility timeout is not a wait a fault pass can afford. Keeping them out of
# "defaults" keeps `make faults` in its time budget.
BROKER_FAULTS: frozenset[FaultName] = frozenset(
    {"broker-crash", "broker-full", "delay-past-timeout", "poison-message"}
)
# broker-crash on Redis runs once per AOF fsync policy: Redis's default, and the one that survives a crash.
FSYNC_POLICIES: tuple[str, ...] = ("everysec", "always")
# broker-crash SIGKILLs the deployment's broker: Redis (one cell per fsync policy) or the RabbitMQ node (one
# cell: durability there is the queue type and publisher confirms of the runner's safe config, not a server
# knob). On a broker not named here the cell is not run, and the run says so (``skipped_faults``).
CRASH_VARIANTS: dict[str, tuple[str, ...]] = {"redis": FSYNC_POLICIES, "rabbitmq": ("",)}
CRASH_BROKERS: frozenset[str] = frozenset(CRASH_VARIANTS)
# api-deploy runs twice: under half-capacity load with compose's grace period, and "short-grace": a burst
# first, so a backlog waits in the runner, then a grace period shorter than that backlog (what happens to
# BackgroundTasks when the orchestrator's timeout is shorter than the work the API holds).
API_DEPLOY_VARIANTS: tuple[str, ...] = ("", "short-grace")
# partition cuts one host from the broker's: the workers (their jobs in hand, their acks and heartbeats), or the
# API (its enqueues). slow-link makes the broker's link lossy and jittery during a drain. Both run on the
# hosts topology (fbt_devstack.netns), in every configuration: how long a library waits before it hands a
# silent worker's jobs on, and its clients' timeouts, are its configuration's own. slow-link's relay sits in
# front of Redis only, so a RabbitMQ runner's slow-link cell is not run, and the run says so.
PARTITION_VARIANTS: tuple[str, ...] = ("workers", "api")
LINK_FAULTS: dict[FaultName, frozenset[str]] = {
    "partition": frozenset({"redis", "rabbitmq"}),
    "slow-link": frozenset({"redis"}),
}
# Faults whose record is a rate (slow-link's drains): cells in parallel share two cores and would measure each
# other, so these run one at a time once the rest are done.
ALONE_FAULTS: frozenset[FaultName] = frozenset({"slow-link"})
# The benchmark's slot layout, so a fault cell runs the runner as `make compare` measures it.
BENCH_LAYOUT = PROFILES["default"]
# The order cells appear in: the library's out-of-the-box behaviour first, then what the project ships.
CONFIGS: tuple[QueueConfigName, ...] = ("defaults", "safe")


@dataclass(frozen=True, slots=True)
class FaultParams:
    n: int = 60  # emails per burst
    fault_after: int = 15  # deliveries before the fault is injected (a trial draws its own, see trial_params)
    smtp_delay_ms: int = 100
    worker_processes: int = BENCH_LAYOUT.worker_processes
    worker_threads: int = BENCH_LAYOUT.worker_threads
    burst_concurrency: int = 4
    # Each cell runs this many times, each trial with its own seed (derived from ``seed``, recorded).
    trials: int = 3
    seed: int = 0
    # True: the watch of a configuration whose redelivery bound is within patience_s lasts past the bound, so
    # a held job becomes recovered or lost; False (the short pass) may stop earlier and says so.
    full_watch: bool = True
    # After the watch, the ledger and the mailbox are read once more this much later: late duplicates count.
    grace_s: float = 5.0
    # delay-past-timeout: the countdown is 2x the runner's visibility timeout when that is at most
    # max_delay_s, else delay_s (no such timer, or one too long to wait out); delayed_n jobs are delayed.
    max_delay_s: float = 90.0
    delay_s: float = 10.0
    delayed_n: int = 3
    # poison-message: emails sent after the malformed message, to see that the worker keeps working.
    followers_n: int = 10
    # The longest recovery bound we wait for; a configuration whose bound is longer is watched watch_s.
    patience_s: float = 150.0
    watch_s: float = 90.0
    # docker compose's stop_grace_period for the workers (compose.yaml): SIGKILL follows after this.
    deploy_grace_s: float = 30.0
    outage_s: float = 3.0
    # api-deploy short-grace: the burst that builds the backlog, and the grace period shorter than it.
    backlog_n: int = 400
    short_grace_s: float = 2.0
    # broker-full: how long the broker stays at its memory limit before it has room again; longer than the
    # probe's HANG_S, so a request the full broker blocks is seen hanging, not answered once room is back.
    full_s: float = 15.0
    # partition: the workers' cut lasts past the configuration's redelivery bound (a heartbeat or visibility
    # timeout) by this margin, or partition_s where there is no bound within patience_s; the API's cut lasts
    # full_s, longer than HANG_S for the same reason as broker-full's.
    partition_margin_s: float = 10.0
    partition_s: float = 30.0
    # slow-link: emails per drain (each drain seconds long at the slots' email rate), and the impairment.
    slow_n: int = 200
    slow_loss_pct: float = 5.0
    slow_stall_ms: float = 200.0  # a lost segment's cost: Linux's minimum retransmission timeout
    slow_jitter_ms: float = 20.0
    outage_probe_hz: float = 10.0
    error_n: int = 5
    fail_first: int = 2
    # None keeps the setting's default; the exactly-once test shortens it (the send-once lease follows it).
    smtp_timeout_s: float | None = None
    # Cells at once. Parallel cells share 2 cores and disturb each other's timing; the fault pass reports
    # counts (lost, held, duplicated), which do not depend on it, and recovery times it marks as approximate.
    # Most of a cell waits out a redelivery bound, so 8 at once still leave a 2-core machine part idle.
    parallel: int = 8
    # None: the slots, the benchmark's equal budget (for BackgroundTasks, the threadpool is the task slots).
    api_threadpool: int | None = None

    @property
    def slots(self) -> int:
        return self.worker_processes * self.worker_threads

    def with_overrides(
        self,
        *,
        n: int | None = None,
        parallel: int | None = None,
        trials: int | None = None,
        seed: int | None = None,
    ) -> "FaultParams":
        """A copy with other burst size, parallelism, trials or seed (``None``: keep); the fault lands mid-burst."""
        n = n or self.n
        return replace(
            self,
            n=n,
            fault_after=min(self.fault_after, n // 2),
            parallel=parallel or self.parallel,
            trials=trials or self.trials,
            seed=self.seed if seed is None else seed,
        )


FULL = FaultParams()
# What `fbt-bench compare` adds: kill-worker only, a smaller burst, a shorter watch of the configurations
# that recover only after minutes or never.
# One trial, and no watch past a bound beyond 45 s: a job still held then is "not recovered within X s".
SHORT = replace(
    FULL, n=30, fault_after=8, watch_s=30.0, patience_s=45.0, parallel=4, trials=1, full_watch=False
)


@dataclass(frozen=True, slots=True)
class Cell:
    runner: str
    config: QueueConfigName
    fault: FaultName
    # broker-crash: the AOF fsync policy; api-deploy: "short-grace" or ""; partition: the host cut off.
    variant: str = ""
    trial: int = 1
    # None: the runner's default (first) broker.
    broker: str | None = None

    @property
    def broker_name(self) -> str:
        return self.broker or load_runner(self.runner).brokers[0]

    @property
    def system(self) -> str:
        """The runner's key on this broker (its plain name on its default broker)."""
        return system_key(self.runner, self.broker_name)

    @property
    def tag(self) -> str:
        variant = f"({self.variant})" if self.variant else ""
        return f"{self.system}/{self.config}/{self.fault}{variant}#{self.trial}"

    def seed(self, base: int) -> int:
        """This trial's seed: derived from the run's base seed and the cell, recorded with its record."""
        return zlib.crc32(
            f"{base}/{self.system}/{self.config}/{self.fault}/{self.variant}/{self.trial}".encode()
        )


def trial_params(params: FaultParams, seed: int) -> tuple[FaultParams, float]:
    """The fault moment a trial draws from its seed: deliveries before the fault, and how far into the next
    SMTP exchange (a fraction of the sink's delay) it lands."""
    rng = random.Random(seed)
    low = max(1, params.n // 8)
    fault_after = rng.randint(low, max(low, params.fault_after if params.trials == 1 else params.n // 2))
    # A single trial aims at the middle of the next send, as the exactly-once test needs by construction; only
    # repeated trials spread the moment. Kept although the moment is timed from the next send's lease: with a
    # drawn moment the exactly-once test's kill once missed every send for Celery and RQ on a loaded machine
    # (in_flight_at_fault 0), and passed again with this.
    mid_send = 0.5 if params.trials == 1 else rng.uniform(0.2, 0.8)
    return replace(params, fault_after=fault_after), mid_send


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


def runs_fault(fault: FaultName, broker: str, config: QueueConfigName) -> bool:
    """Whether a cell of ``fault`` runs for a runner on ``broker`` in ``config`` (see BROKER_FAULTS)."""
    if fault == "api-deploy":
        # The API's restart is the queue config's business only where the tasks live in the API; a broker
        # runner's API holds no job in either config, so its safe config answers for both.
        return config == "safe" or broker == "none"
    if fault == "slow-link":
        # A rate, measured alone (ALONE_FAULTS): the safe config only, to keep `make faults` in its budget.
        return broker in LINK_FAULTS[fault] and config == "safe"
    if fault in LINK_FAULTS:
        return broker in LINK_FAULTS[fault]
    if fault in BROKER_FAULTS and not (broker != "none" and config == "safe"):
        return False
    return fault != "broker-crash" or broker in CRASH_BROKERS


def skipped_faults(
    runners: tuple[str, ...], faults: tuple[FaultName, ...], brokers: tuple[str, ...] | None = None
) -> list[str]:
    """One line per fault left out on a broker it does not apply to, naming the runners it leaves out."""
    why: dict[str, tuple[frozenset[str], str]] = {
        "broker-crash": (
            CRASH_BROKERS,
            "the harness knows how to crash and restart only "
            + " and ".join(BROKER_TITLES[b] for b in sorted(CRASH_BROKERS)),
        ),
        "slow-link": (
            LINK_FAULTS["slow-link"],
            "its loss and jitter are emulated in a relay in front of Redis only",
        ),
    }
    lines = []
    for fault, (served, reason) in why.items():
        if fault not in faults:
            continue
        by_broker: dict[str, list[str]] = {}
        for runner in runners:
            for broker in load_runner(runner).brokers:
                if broker != "none" and broker not in served and (brokers is None or broker in brokers):
                    by_broker.setdefault(broker, []).append(runner)
        lines += [
            f"{fault} not run for {', '.join(names)} on {BROKER_TITLES.get(broker, broker)}: {reason}"
            for broker, names in sorted(by_broker.items())
        ]
    return lines


def matrix(
    runners: tuple[str, ...],
    configs: tuple[QueueConfigName, ...] = CONFIGS,
    faults: tuple[FaultName, ...] = FAULTS,
    trials: int = 1,
    brokers: tuple[str, ...] | None = None,
) -> list[Cell]:
    """Every cell: each runner on each of its brokers among ``brokers`` (None: all), in each of its distinct
    configurations among ``configs``, every fault (a broker fault only where there is a broker, in the safe
    config; broker-crash once per ``CRASH_VARIANTS`` entry of its broker), ``trials`` times."""
    cells: list[Cell] = []
    for runner in runners:
        for broker in load_runner(runner).brokers:
            if brokers is not None and broker not in brokers and broker != "none":
                continue
            for config in distinct_configs(runner, configs, broker):
                for fault in faults:
                    if not runs_fault(fault, broker, config.name):
                        continue
                    variants = (
                        CRASH_VARIANTS[broker]
                        if fault == "broker-crash"
                        else API_DEPLOY_VARIANTS
                        if fault == "api-deploy"
                        else PARTITION_VARIANTS
                        if fault == "partition"
                        else ("",)
                    )
                    cells.extend(
                        Cell(runner, config.name, fault, variant, trial, broker)
                        for variant in variants
                        for trial in range(1, trials + 1)
                    )
    return cells


@dataclass
class FaultRun:
    """One cell's record for results.json, and what a test needs to check it independently."""

    record: dict[str, Any]
    accepted: list[str]
    mailbox: Path


class Cancelled(RuntimeError):
    """The run was interrupted; the cell's stack is being torn down."""
