"""The runner plugin: everything the API, the devstack and the harness may know about one runner.

A runner is one workspace member that registers one ``Runner`` object under the ``fbt.backends`` entry-point
group. Nothing outside that member names the library: the API asks the runner for a ``Backend``, the devstack
for its worker command and health check, the harness for its queue configurations, display name and fault
knowledge (where its messages wait, when it redelivers, what happens on each fault). Dependencies point one
way: runners import this package, never the reverse; ``fbt_tasks.registry`` finds and loads them.
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, TypedDict, runtime_checkable

from fbt_tasks.backend import Backend
from fbt_tasks.reference import Reference
from fbt_tasks.settings import BrokerName, QueueConfigName, Settings

QUEUE_CONFIG_NAMES: tuple[QueueConfigName, ...] = ("safe", "defaults")
FaultName = Literal[
    "kill-worker",
    "deploy",
    "api-deploy",
    "broker-restart",
    "task-error",
    "broker-crash",
    "broker-full",
    "partition",
    "slow-link",
    "delay-past-timeout",
    "poison-message",
]
# How the report and the terminal name a broker.
BROKER_TITLES: Mapping[str, str] = {"redis": "Redis", "rabbitmq": "RabbitMQ", "none": "no broker"}


@dataclass(frozen=True, slots=True)
class Setting:
    """One library option a queue config sets (or keeps), with the one-line reason for its value."""

    value: Any
    why: str


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """A runner's reliability configuration (QUEUE_CONFIG): one shape for every runner.

    "Queue config" is the runner's; a benchmark "profile" (quick, default) is the harness's parameter set.
    ``settings`` are the library's own option names and values; a runner reads them with ``value()`` and
    ``describe()`` records them, so the report shows exactly what was in force and why.
    """

    name: QueueConfigName
    # One sentence: what this configuration promises on a crash and on a failing task.
    summary: str
    # Attempts per job before it is given up (1: no retry).
    max_attempts: int
    settings: Mapping[str, Setting]
    # The errors an attempt is retried on, as dotted names (fbt_tasks.retry): empty without retries,
    # ("Exception",) for a library default that retries whatever fails.
    retries_on: tuple[str, ...] = ()

    def value(self, key: str, default: Any = None) -> Any:
        found = self.settings.get(key)
        return default if found is None else found.value

    def options(self, prefix: str) -> dict[str, Any]:
        """The values of the settings named ``<prefix>.<option>``, keyed by ``<option>``.

        A runner names settings after where the library takes them ("RedisBroker.heartbeat_timeout",
        "Task.max_retries") and hands each group to its place with this.
        """
        head = f"{prefix}."
        return {key.removeprefix(head): s.value for key, s in self.settings.items() if key.startswith(head)}

    def as_record(self) -> "QueueConfigRecord":
        """For results.json: every setting's value and why."""
        return {
            "name": self.name,
            "summary": self.summary,
            "max_attempts": self.max_attempts,
            "retries_on": list(self.retries_on),
            "settings": {key: {"value": s.value, "why": s.why} for key, s in self.settings.items()},
        }


class SettingRecord(TypedDict):
    value: Any
    why: str


class QueueConfigRecord(TypedDict):
    """A queue config as results.json records it (``QueueConfig.as_record``)."""

    name: QueueConfigName
    summary: str
    max_attempts: int
    retries_on: list[str]
    settings: dict[str, SettingRecord]


@dataclass(frozen=True, slots=True)
class PublishedDrain:
    """A drain time another benchmark published for this library, with its conditions (not this machine's).

    The report joins every runner's figures by ``source`` and compares only the order of the libraries.
    """

    source: str  # the benchmark, as its authors name it ("SAQ README")
    n: int  # jobs drained
    workers: str  # its worker setup, in its words
    task: str  # what each job did
    seconds: float  # time to drain n
    variant: str = ""  # how this library ran there, where that differs ("Celery threads pool")


class RunnerRecord(TypedDict):
    """A runner's plugin facts as results.json records them (``runner_record``)."""

    display_name: str
    description: str
    broker: str
    # The BROKER value, kept when a backend's describe() words "broker" its own way.
    broker_name: str
    runs_in_api: bool
    slot_layout: str
    queue_config: QueueConfigRecord
    message_locations: list[str]
    exhausted_to: str
    published_drains: list[dict[str, Any]]


class Holdings(TypedDict):
    """How many of some job ids the broker still holds, by where they wait.

    On Redis a runner finds each id in the broker's keys. RabbitMQ cannot show a message without consuming
    it, so a RabbitMQ runner counts per queue (ready and unacked), not per id: every message in our
    private node's queue is one of the cell's jobs, but the counts are the queue's, not filtered by ``ids``.
    """

    queued: int  # waiting for a worker
    held: int  # delivered to a worker and not acked: comes back after the library's timeout
    scheduled: int  # waiting out a retry backoff or a countdown
    failed: int  # in the library's failure store (dead-letter queue, failed registry, FAILURE result)


NO_HOLDINGS = Holdings(queued=0, held=0, scheduled=0, failed=0)


def pending(holdings: Holdings) -> int:
    """Jobs the broker will still hand to a worker (failed ones it will not)."""
    return holdings["queued"] + holdings["held"] + holdings["scheduled"]


@dataclass(frozen=True, slots=True)
class FaultOutcome:
    """What the fault harness counted in one cell, as a runner's mechanism sentence reads it: a typed view
    the harness builds from its record (fbt_bench.faults.trials), so no runner reads the harness's keys."""

    lost: int = 0  # accepted, never completed, no longer anywhere: gone for good
    held: int = 0  # accepted, not completed, still in the broker: comes back later
    failed: int = 0  # accepted, every attempt failed: in the library's failure store, or seen failing
    unacked: int = 0  # of those held, delivered to a worker and not acknowledged
    failed_attempts: int = 0
    reexecuted: int = 0  # jobs run again after the fault
    duplicates: int = 0  # jobs whose effect ran twice
    watched_s: float | None = None  # how long the harness watched after the fault
    # deploy: whether the worker exited within the grace period (None: not a deploy).
    graceful: bool | None = None
    delay_s: float | None = None  # delay-past-timeout: the countdown the jobs were given
    appendfsync: str | None = None  # broker-crash on Redis: the fsync policy in force
    # broker-restart, broker-full: the API's slowest answer while the broker was out, and how many of the
    # probe's requests it refused (503) and left hanging.
    slowest_answer_ms: float | None = None
    refused_while_out: int | None = None
    hung_while_out: int | None = None
    # api-deploy: requests that found no API listening (or an error status) while it was replaced.
    unreachable_while_out: int | None = None
    # broker-full: a worker process exited while the broker was full (it was restarted, as compose would).
    worker_exited: bool | None = None
    # partition: the host cut off from the broker's ("workers" or "api"), and for how long.
    cut_off: str | None = None
    cut_s: float | None = None
    # slow-link: the drain rate on the clean link and on the impaired one, and the impairment in words.
    clean_per_s: float | None = None
    slow_per_s: float | None = None
    impairment: str | None = None
    # delay-past-timeout: the fewest and most runs of a delayed job, and the runs turned away as repeats.
    runs: tuple[int, int, int] | None = None
    # poison-message: where the malformed message ended up, and whether the worker kept working.
    poison_where: str | None = None
    worker_kept_working: bool | None = None

    @property
    def killed(self) -> bool:
        """The worker died without finishing its jobs: a kill, or a deploy whose grace period ran out."""
        return self.graceful is False


class FaultModel(Protocol):
    """What a runner knows about its own behaviour under faults, read by the fault harness."""

    # Where a job that exhausted its retries ends up, in a few words ("dead-letter queue default.XQ").
    exhausted_to: str

    def message_locations(self, settings: Settings) -> list[str]:
        """The broker keys or queues where this runner's messages wait, for the report and the notes."""
        ...

    def holdings(self, settings: Settings, ids: set[str]) -> Holdings:
        """Where the broker keeps those of ``ids`` it still has; raises the client's error if it is down."""
        ...

    def redelivery_bound_s(self, described: Mapping[str, Any]) -> float | None:
        """Seconds after a SIGKILL by which the configuration in force puts the killed worker's jobs back.

        0: nothing to redeliver (in-process); None: this configuration never redelivers them.
        """
        ...

    def visibility_timeout_s(self, described: Mapping[str, Any]) -> float | None:
        """How long a delivered, unacked message may wait before the broker hands it out again.

        None when the library keeps a delayed message apart from delivered ones (no such timer applies).
        """
        ...

    def inject_malformed(self, settings: Settings) -> str:
        """Put one message no worker can decode onto this runner's own queue; return a marker to find it by.

        Only the runner knows its wire format. The marker appears in the raw message (and so in a log line
        that quotes it) and is what ``malformed_whereabouts`` looks for.
        """
        ...

    def malformed_whereabouts(self, settings: Settings, marker: str) -> str:
        """Where the malformed message is now, in a few words ("dead-letter queue default.XQ", "gone")."""
        ...

    def mechanism(self, fault: FaultName, described: Mapping[str, Any], outcome: FaultOutcome) -> str:
        """One sentence: why this runner, configured as ``described``, behaved as ``outcome`` measured."""
        ...


@runtime_checkable
class Runner(Protocol):
    """One runner, as its workspace member registers it under the ``fbt.backends`` entry points."""

    name: str  # the BACKEND value and the entry point's name
    display_name: str  # "Celery", "BackgroundTasks"
    description: str  # one line for the report
    # The BROKER values it runs on, the default first: ("redis", "rabbitmq"), or ("none",) in the API.
    brokers: tuple[BrokerName, ...]
    # Tasks run inside the API process (no worker, no broker): its threadpool is the task slots.
    runs_in_api: bool
    # Distributions whose versions a report records (the library and its transport).
    distributions: tuple[str, ...]
    # Its reliability configurations per broker (QUEUE_CONFIG): "safe" as shipped, "defaults" the library
    # out of the box; a library takes different options on each broker, each with its own reason.
    queue_configs: Mapping[str, Mapping[QueueConfigName, QueueConfig]]
    faults: FaultModel
    # Drain figures other benchmarks published for this library (issue #12 quotes them), empty when none.
    published_drains: tuple[PublishedDrain, ...]

    def backend(self, settings: Settings) -> Backend:
        """The API's side: enqueue, status, ping, describe, close."""
        ...

    def worker_command(self, settings: Settings) -> list[str] | None:
        """The console script (and arguments) that starts a worker; None when tasks run in the API."""
        ...

    def worker_ready(self, settings: Settings) -> bool:
        """Whether at least one of this runner's workers is alive (the compose healthcheck's answer)."""
        ...

    def slot_layout(self, settings: Settings) -> str:
        """How this runner really spends ``settings.slots`` ("8 prefork processes, prefetch 1")."""
        ...

    def reference(self, settings: Settings) -> Reference | None:
        """Its library's own minimal worker at the same layout, broker and queue config (the harness's
        fidelity check, ``fbt_tasks.reference``); None when tasks run in the API (no worker to compare)."""
        ...


def queue_config(runner: Runner, settings: Settings) -> QueueConfig:
    """The configuration in force: QUEUE_CONFIG on BROKER."""
    return runner.queue_configs[settings.broker_name][settings.queue_config]


def runner_record(runner: Runner, settings: Settings) -> RunnerRecord:
    """What results.json records about a runner beside its backend's describe(): the plugin's own facts."""
    config = queue_config(runner, settings)
    return {
        "display_name": runner.display_name,
        "description": runner.description
        if settings.broker_name == "none"
        else f"{runner.description}, on {BROKER_TITLES[settings.broker_name]}",
        "broker": settings.broker_name,
        # describe() may replace "broker" with its own words; this one stays the BROKER value.
        "broker_name": settings.broker_name,
        "runs_in_api": runner.runs_in_api,
        "slot_layout": runner.slot_layout(settings),
        "queue_config": config.as_record(),
        "message_locations": runner.faults.message_locations(settings),
        "exhausted_to": runner.faults.exhausted_to,
        # The peers measured each library on its default broker: recorded there only, so a report joins one row.
        "published_drains": [asdict(d) for d in runner.published_drains]
        if settings.broker_name == runner.brokers[0]
        else [],
    }
