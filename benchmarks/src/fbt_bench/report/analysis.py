"""The report's model of a results document: records grouped into repeat sets, metrics read from them, and
what each runner is called and how it runs.

A ``RepeatSet`` is every repeat of one runner, in one queue config, in one scenario; a metric is a function
of one record; the spread of a metric over a repeat set is ``measuring.stats.Spread``. Two spreads are
ranked only when their ranges do not overlap (``compare``).

Runner facts come from the document: each runner's record in ``runners`` carries its ``display_name`` and
``runs_in_api`` (from its plugin). Older documents lack them; then the installed plugin answers, and
failing that the raw name (and "not in the API").
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from fbt_bench.measuring.stats import Spread
from fbt_bench.scenarios.baselines import BASELINES
from fbt_bench.scenarios.baselines import DISPLAY_NAMES as FLOOR_NAMES
from fbt_tasks.registry import UnknownRunner, load_runner, system_key
from fbt_tasks.runner import BROKER_TITLES, Runner

PARTIAL_MARK = "[partial]"
# The report's scenario order: the three capacities first, then the workloads; the scenarios older files
# hold (replaced by accept/drain/steady) last, so such files still render.
SCENARIOS = (
    "accept",
    "drain",
    "steady",
    "email-io",
    "cpu-heavy",
    "cpu-sweep",
    "mixed",
    "enqueue",
    "log-burst",
)
CURRENT_SCENARIOS = SCENARIOS[:7]
# Process groups the harness adds for measuring; they are not part of a runner's ops footprint.
HARNESS_GROUPS = frozenset({"loadgen", "smtp"})

Record = dict[str, Any]
Metric = Callable[[Record], float | None]


def compare(a: Spread, b: Spread) -> int:
    """+1 if a is above b beyond both ranges, -1 if below, 0 if the ranges overlap (noise)."""
    (a_low, a_high), (b_low, b_high) = a.bounds(), b.bounds()
    if a_low > b_high:
        return 1
    if a_high < b_low:
        return -1
    return 0


# ---------------------------------------------------------------------------------------------- metrics


def samples(shape: Mapping[str, Any] | None) -> int:
    """A latency summary's sample count: ``n``, or ``count`` in files written before it was renamed."""
    if not shape:
        return 0
    n = shape.get("n", shape.get("count"))
    return n if isinstance(n, int) else 0


def _latency(field: str, pct: str) -> Metric:
    def metric(record: Record) -> float | None:
        shape = record.get(field)
        return _number(shape.get(pct)) if shape and samples(shape) > 0 else None

    return metric


def extra_metric(*path: str) -> Metric:
    """A number inside a record's ``extra`` (e.g. "probe_loaded_ms", "p99"); None if absent or empty."""

    def metric(record: Record) -> float | None:
        value: Any = record.get("extra", {})
        for key in path:
            if not isinstance(value, dict) or value.get(key) is None:
                return None
            value = value[key]
        return None if isinstance(value, dict) and samples(value) == 0 else _number(value)

    return metric


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def throughput(record: Record) -> float | None:
    value: float | None = record["throughput_per_s"]
    return value


latency_p50 = _latency("latency_ms", "p50")
latency_p99 = _latency("latency_ms", "p99")
probe_idle_p99 = extra_metric("probe_idle_ms", "p99")
probe_loaded_p99 = extra_metric("probe_loaded_ms", "p99")
email_efficiency = extra_metric("efficiency")
enqueue_cost = extra_metric("enqueue_cost_us")
max_rate_under_slo = extra_metric("max_rate_under_slo")


def kind_p99(kind: str) -> Metric:
    return extra_metric("by_kind", kind, "p99")


def kind_shape(record: Record, kind: str) -> dict[str, Any] | None:
    """One task kind's end-to-end latency summary (mixed: by_kind; steady: latency_by_kind)."""
    extra = record.get("extra", {})
    by_kind = extra.get("latency_by_kind") or extra.get("by_kind") or {}
    shape = by_kind.get(kind)
    return shape if isinstance(shape, dict) else None


def enqueue_p99_at(rate: float) -> Metric:
    return _enqueue_at(rate, "p99")


def enqueue_p50_at(rate: float) -> Metric:
    return _enqueue_at(rate, "p50")


def _enqueue_at(rate: float, pct: str) -> Metric:
    def metric(record: Record) -> float | None:
        for step in record.get("extra", {}).get("rates", []):
            if step["rate"] == rate and samples(step["latency_ms"]) > 0:
                value: float = step["latency_ms"][pct]
                return value
        return None

    return metric


# ---------------------------------------------------------------------------------------------- grouping


# ---------------------------------------------------------------------------------------------- runners


def on_default_broker(system: str) -> bool:
    """Whether a system key (``system_of``) names its runner on its default broker: a plain runner name."""
    return "/" not in system


def system_of(record: Record) -> str:
    """The measured configuration a record (or fault record) belongs to: its key in ``runners``.

    A runner on its default broker is its plain name; on another broker ``<runner>/<broker>``, so Celery on
    RabbitMQ is never grouped, averaged or compared as if it were Celery on Redis.
    """
    return system_key(record["runner"], record.get("broker"))


@cache
def _installed(runner: str) -> Runner | None:
    """The installed plugin of that name (or system key), for documents that predate the recorded facts."""
    try:
        return load_runner(runner.split("/", 1)[0])
    except (UnknownRunner, TypeError):  # not installed, or an entry point that is not a runner plugin
        return None


def display_name(results: dict[str, Any], runner: str) -> str:
    """How the report calls a runner: its recorded display name, the installed plugin's, or the raw name."""
    if runner in FLOOR_NAMES:
        return FLOOR_NAMES[runner]
    recorded = results["runners"].get(runner, {}).get("display_name")
    if isinstance(recorded, str) and recorded:
        return recorded
    base, _, broker = runner.partition("/")
    plugin = _installed(base)
    if plugin is None:
        return runner
    # A system off its runner's default broker that the document does not name (a `make faults` run).
    return f"{plugin.display_name} on {BROKER_TITLES.get(broker, broker)}" if broker else plugin.display_name


def runs_in_api(results: dict[str, Any], runner: str) -> bool:
    """Whether the runner's tasks run inside the API process (its threadpool is the task slots)."""
    if runner in FLOOR_NAMES:
        return False
    recorded = results["runners"].get(runner, {}).get("runs_in_api")
    if isinstance(recorded, bool):
        return recorded
    plugin = _installed(runner)
    return plugin.runs_in_api if plugin is not None else False


def runner_rank(results: dict[str, Any], runner: str) -> tuple[int, str]:
    """The report's runner order: as planned (parameters.runners), others by name, then the floors."""
    planned = list(results["parameters"].get("runners", []))
    if runner in BASELINES:
        return (len(planned) + 1 + BASELINES.index(runner), runner)
    return (planned.index(runner), runner) if runner in planned else (len(planned), runner)


# ---------------------------------------------------------------------------------------------- repeat sets


@dataclass(frozen=True)
class RepeatSet:
    """Every repeat of one runner, in one queue config, in one scenario."""

    runner: str
    config: str
    scenario: str
    label: str
    records: tuple[Record, ...]

    @property
    def baseline(self) -> bool:
        return self.runner in BASELINES

    def spread(self, metric: Metric) -> Spread | None:
        return Spread.of(metric(r) for r in self.records)

    def median(self, metric: Metric) -> float | None:
        spread = self.spread(metric)
        return spread.median if spread else None

    def total(self, field: str) -> int:
        return sum(r[field] for r in self.records)

    @property
    def shortfall(self) -> int:
        return sum(max(0, r["expected"] - r["completed"]) for r in self.records)

    @property
    def surplus(self) -> int:
        """Completions beyond what was sent: stray ledger entries, so the count cannot be trusted either."""
        return sum(max(0, r["completed"] - r["expected"]) for r in self.records)

    @property
    def partial(self) -> bool:
        return any(self.total(f) for f in ("duplicated", "failed")) or self.shortfall > 0 or self.surplus > 0

    def problems(self) -> str:
        """'137 of 60,000 tasks not completed (repeat 1: 19,863/20,000); 2 tasks completed more than once'."""
        parts = []
        if self.shortfall:
            repeats = ", ".join(
                f"repeat {r['repeat']}: {r['completed']:,}/{r['expected']:,}"
                for r in self.records
                if r["completed"] < r["expected"]
            )
            parts.append(f"{self.shortfall:,} of {self.total('expected'):,} tasks not completed ({repeats})")
        if self.total("failed"):
            parts.append(f"{self.total('failed'):,} failed without a successful attempt")
        if self.surplus:
            parts.append(f"{self.surplus:,} more completions than expected")
        if self.total("duplicated"):
            parts.append(f"{self.total('duplicated'):,} tasks completed more than once")
        return "; ".join(parts)

    def tag(self) -> str:
        """The label with its partial flag, so no partial figure is ever cited bare."""
        return f"{self.label} {PARTIAL_MARK}" if self.partial else self.label


@dataclass(frozen=True)
class Summary:
    results: dict[str, Any]
    repeat_sets: dict[tuple[str, str, str], RepeatSet]  # (scenario, runner, config)
    systems: tuple[tuple[str, str], ...]  # (runner, config) of the compared runners, baselines excluded

    @property
    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = self.results["parameters"]
        return params

    @property
    def repeats(self) -> int:
        return int(self.params["repeats"])

    def repeats_planned(self, scenario: str) -> int:
        """The repeats a scenario was planned for: one for the profile's ``once`` scenarios."""
        return 1 if scenario in (self.params.get("once") or []) else self.repeats

    @staticmethod
    def repeats_recorded(group: "RepeatSet") -> int:
        """The distinct repeats a repeat set holds (a cpu-sweep repeat has one record per placement)."""
        return len({record["repeat"] for record in group.records})

    def scenarios(self) -> list[str]:
        present = {scenario for scenario, _, _ in self.repeat_sets}
        return [s for s in SCENARIOS if s in present] + sorted(present - set(SCENARIOS))

    def missing_scenarios(self) -> list[str]:
        """The current scenarios this document has no record of: their sections say "not measured"."""
        return [s for s in CURRENT_SCENARIOS if s not in self.scenarios()]

    def in_scenario(self, scenario: str, *, baselines: bool = True) -> list[RepeatSet]:
        return [
            g for (s, _, _), g in self.repeat_sets.items() if s == scenario and (baselines or not g.baseline)
        ]

    def get(self, scenario: str, runner: str, config: str) -> RepeatSet | None:
        return self.repeat_sets.get((scenario, runner, config))

    def baseline(self, scenario: str, runner: str) -> RepeatSet | None:
        return next((g for g in self.in_scenario(scenario) if g.runner == runner), None)

    def system_label(self, runner: str, config: str) -> str:
        return next(g.label for g in self.repeat_sets.values() if (g.runner, g.config) == (runner, config))

    def threadpool_tokens(self) -> int | None:
        """The API threadpool in force for tasks run in the API: what such a runner reported, else the
        API_THREADPOOL used."""
        pooled = [info for name, info in self.results["runners"].items() if "threadpool_tokens" in info]
        tokens = pooled[0].get("threadpool_tokens") if pooled else None
        if not isinstance(tokens, int):
            tokens = self.params.get("api_threadpool")
        return tokens if isinstance(tokens, int) and tokens > 0 else None

    def display_name(self, runner: str) -> str:
        return display_name(self.results, runner)

    def runs_in_api(self, runner: str) -> bool:
        return runs_in_api(self.results, runner)

    def in_api_systems(self) -> list[tuple[str, str]]:
        """The compared (runner, config) whose tasks run in the API process."""
        return [(runner, config) for runner, config in self.systems if self.runs_in_api(runner)]

    def threadpool_systems(self) -> list[tuple[str, str]]:
        """The in-API systems whose tasks take the API threadpool's tokens (their describe() reports the pool);
        async tasks awaited on the event loop do not."""
        runners = self.results["runners"]
        return [(r, c) for r, c in self.in_api_systems() if "threadpool_tokens" in runners.get(r, {})]


def summarize(results: dict[str, Any]) -> Summary:
    """Group records into repeat sets by scenario, runner and config, in the report's runner order."""
    by_key: dict[tuple[str, str, str], list[Record]] = {}
    for record in results["records"]:
        if record["scenario"] == "drain" and runs_in_api(results, system_of(record)):
            # Older runs drained such a runner in a process of its own, no API: a figure no API can reach
            # (its backlog lives in the API's memory and arrives no faster than it accepts). Not compared.
            continue
        by_key.setdefault((record["scenario"], system_of(record), record["config"]), []).append(record)
    configs: dict[str, set[str]] = {}
    for _, runner, config in by_key:
        configs.setdefault(runner, set()).add(config)

    def label(runner: str, config: str) -> str:
        name = display_name(results, runner)
        return f"{name} ({config})" if len(configs[runner]) > 1 else name

    ordered = sorted(by_key, key=lambda k: (_scenario_rank(k[0]), runner_rank(results, k[1]), k[2]))
    groups = {
        key: RepeatSet(key[1], key[2], key[0], label(key[1], key[2]), tuple(sorted(by_key[key], key=_repeat)))
        for key in ordered
    }
    systems = sorted(
        {(k[1], k[2]) for k in ordered if k[1] not in BASELINES},
        key=lambda k: (runner_rank(results, k[0]), k[1]),
    )
    return Summary(results, groups, tuple(systems))


def _repeat(record: Record) -> int:
    repeat: int = record["repeat"]
    return repeat


def _scenario_rank(scenario: str) -> tuple[int, str]:
    return (SCENARIOS.index(scenario), "") if scenario in SCENARIOS else (len(SCENARIOS), scenario)


# ---------------------------------------------------------------------------------------------- across scenarios


def worst_slo_rate(group: RepeatSet) -> float | None:
    """The lowest max-rate-under-SLO over repeats; None if any repeat missed the SLO at every tested rate."""
    per_repeat = [max_rate_under_slo(r) for r in group.records]
    met = [v for v in per_repeat if v is not None]
    return min(met) if met and len(met) == len(per_repeat) else None


def footprint_groups(summary: Summary) -> list[RepeatSet]:
    """One pseudo-group per system holding all its records, for figures that span every scenario."""
    out = []
    for runner, config in summary.systems:
        records = tuple(
            r
            for g in summary.repeat_sets.values()
            if (g.runner, g.config) == (runner, config)
            for r in g.records
        )
        out.append(RepeatSet(runner, config, "all", summary.system_label(runner, config), records))
    return out


def peak_mb(usage: dict[str, Any]) -> float:
    """A process group's peak memory: PSS where measured (shared pages split between the processes that
    share them), else the RSS older files hold (which counts a forked child's shared pages again)."""
    value = usage.get("peak_pss_mb", usage.get("peak_rss_mb"))
    return float(value) if isinstance(value, int | float) else 0.0


def memory_measure(summary: Summary) -> str:
    """ "PSS" when every record measured it, else "RSS" (older files): what the memory figures mean."""
    pss = all("peak_pss_mb" in u for r in summary.results["records"] for u in r["resources"].values())
    return "PSS" if pss else "RSS"


def group_peaks(group: RepeatSet) -> dict[str, Spread]:
    """Process group -> its peak memory over all scenarios, per repeat, summarised over repeats."""
    per_repeat: dict[str, dict[int, float]] = {}
    for record in group.records:
        for name, usage in record["resources"].items():
            peaks = per_repeat.setdefault(name, {})
            peaks[record["repeat"]] = max(peak_mb(usage), peaks.get(record["repeat"], 0.0))
    return {name: s for name, peaks in sorted(per_repeat.items()) if (s := Spread.of(peaks.values()))}


def footprint(group: RepeatSet) -> Spread | None:
    """Per repeat, the sum of the runner's own process groups' peaks (harness excluded); spread over repeats.

    Peaks of different processes need not coincide, so this is an upper bound of what ran at once.
    """
    per_repeat: dict[int, dict[str, float]] = {}
    for record in group.records:
        peaks = per_repeat.setdefault(record["repeat"], {})
        for name, usage in record["resources"].items():
            if name not in HARNESS_GROUPS:
                peaks[name] = max(peak_mb(usage), peaks.get(name, 0.0))
    return Spread.of(sum(peaks.values()) for peaks in per_repeat.values() if peaks)
