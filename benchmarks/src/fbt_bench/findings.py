"""What the numbers say: repeats summarised as median + spread, then findings and the "how to choose" table.

Every sentence here is computed from a results document; nothing is hand-written about any runner. Two
results are ranked only when their min-max ranges across repeats do not overlap; otherwise they are called
indistinguishable within noise. Partial runs and noisy figures carry their flag wherever they are cited.
"""

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fbt_bench.stats import NOISY_CV as CV_NOISY  # one threshold for the harness's warnings and the report

NOISY_MARK = "⚠"
PARTIAL_MARK = "⛔ partial"
SCENARIOS = ("enqueue", "log-burst", "email-io", "cpu-heavy", "mixed")
BASELINES = ("raw-redis", "direct-call")
KNOWN_RUNNERS = ("inprocess", "celery", "rq", "dramatiq")
# Process groups the harness adds for measuring; they are not part of a runner's ops footprint.
HARNESS_GROUPS = frozenset({"loadgen", "smtp"})
DISPLAY_NAMES = {
    "inprocess": "BackgroundTasks",
    "celery": "Celery",
    "rq": "RQ",
    "dramatiq": "Dramatiq",
    "raw-redis": "raw Redis",
    "direct-call": "direct call",
}

Record = dict[str, Any]
Metric = Callable[[Record], float | None]


def table_id(scenario: str) -> str:
    return f"tab-{scenario}"


def figure_id(chart: str, scenario: str = "") -> str:
    return f"fig-{chart}-{scenario}" if scenario else f"fig-{chart}"


# ---------------------------------------------------------------------------------------------- numbers


@dataclass(frozen=True)
class Spread:
    """One figure across repeats: the median, the min-max range and the coefficient of variation."""

    median: float
    low: float
    high: float
    cv: float | None  # None with a single repeat (no spread to speak of) or a zero mean
    n: int

    @classmethod
    def of(cls, values: Iterable[float | None]) -> "Spread | None":
        xs = [float(v) for v in values if v is not None]
        if not xs:
            return None
        mean = statistics.fmean(xs)
        # Population standard deviation, as fbt_bench.stats uses, so the report and results.json agree.
        cv = statistics.pstdev(xs) / mean if len(xs) > 1 and mean > 0 else None
        return cls(statistics.median(xs), min(xs), max(xs), cv, len(xs))

    @property
    def noisy(self) -> bool:
        return self.cv is not None and self.cv > CV_NOISY

    def bounds(self) -> tuple[float, float]:
        """The range comparisons use: min-max, or ±CV_NOISY around a single repeat (no spread measured)."""
        if self.n >= 2:
            return self.low, self.high
        return self.median * (1 - CV_NOISY), self.median * (1 + CV_NOISY)


def compare(a: Spread, b: Spread) -> int:
    """+1 if a is above b beyond both ranges, -1 if below, 0 if the ranges overlap (noise)."""
    (a_low, a_high), (b_low, b_high) = a.bounds(), b.bounds()
    if a_low > b_high:
        return 1
    if a_high < b_low:
        return -1
    return 0


def repeats_text(n: int) -> str:
    return "1 repeat" if n == 1 else f"{n} repeats"


def fmt(x: float | None, unit: str = "") -> str:
    """Three significant figures, thousands separators: 1626.4 -> '1,626', 0.01234 -> '0.0123'."""
    if x is None:
        return "n/a"
    if x == 0:
        text = "0"
    elif x == int(x) and abs(x) < 1e15:
        text = f"{int(x):,}"  # counts, rates and parameters stay exact: 50 not 50.0
    elif abs(x) >= 100:
        text = f"{x:,.0f}"
    elif abs(x) >= 10:
        text = f"{x:.1f}"
    else:
        text = f"{x:.3g}"
    return f"{text}{unit}"


def possessive(name: str) -> str:
    return f"{name}'" if name.endswith("s") else f"{name}'s"


def fmt_ratio(x: float | None) -> str:
    return "n/a" if x is None else f"×{fmt(x)}"


def fmt_pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.0f}%"


def fmt_spread(s: Spread | None, unit: str = "") -> str:
    """The median with its noise flag; the range and CV go in their own table columns."""
    if s is None:
        return "n/a"
    return fmt(s.median, unit) + (f" {NOISY_MARK}" if s.noisy else "")


def fmt_range(s: Spread | None) -> str:
    return "n/a" if s is None else f"{fmt(s.low)}–{fmt(s.high)}"


def fmt_cv(s: Spread | None) -> str:
    if s is None or s.cv is None:
        return "n/a"
    return f"{s.cv * 100:.0f}%" + (f" {NOISY_MARK}" if s.noisy else "")


def _latency(field: str, pct: str) -> Metric:
    def metric(record: Record) -> float | None:
        shape = record.get(field)
        return shape[pct] if shape and shape.get("count", 0) > 0 else None

    return metric


def extra_metric(*path: str) -> Metric:
    """A number inside a record's ``extra`` (e.g. "probe_loaded_ms", "p99"); None if absent or empty."""

    def metric(record: Record) -> float | None:
        value: Any = record.get("extra", {})
        for key in path:
            if not isinstance(value, dict) or value.get(key) is None:
                return None
            value = value[key]
        return None if isinstance(value, dict) and value.get("count") == 0 else _number(value)

    return metric


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def throughput(record: Record) -> float | None:
    return record["throughput_per_s"]


latency_p50 = _latency("latency_ms", "p50")
latency_p99 = _latency("latency_ms", "p99")
probe_idle_p99 = extra_metric("probe_idle_ms", "p99")
probe_loaded_p99 = extra_metric("probe_loaded_ms", "p99")
email_efficiency = extra_metric("efficiency")
enqueue_cost = extra_metric("enqueue_cost_us")
max_rate_under_slo = extra_metric("max_rate_under_slo")


def kind_p99(kind: str) -> Metric:
    return extra_metric("by_kind", kind, "p99")


def enqueue_p99_at(rate: float) -> Metric:
    return _enqueue_at(rate, "p99")


def enqueue_p50_at(rate: float) -> Metric:
    return _enqueue_at(rate, "p50")


def _enqueue_at(rate: float, pct: str) -> Metric:
    def metric(record: Record) -> float | None:
        for step in record.get("extra", {}).get("rates", []):
            if step["rate"] == rate and step["latency_ms"]["count"] > 0:
                return step["latency_ms"][pct]
        return None

    return metric


# ---------------------------------------------------------------------------------------------- grouping


@dataclass(frozen=True)
class Group:
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
        return f"{self.label} [{PARTIAL_MARK}]" if self.partial else self.label


@dataclass(frozen=True)
class Summary:
    results: dict[str, Any]
    groups: dict[tuple[str, str, str], Group]  # (scenario, runner, config)
    systems: tuple[tuple[str, str], ...]  # (runner, config) of the compared runners, baselines excluded

    @property
    def params(self) -> dict[str, Any]:
        return self.results["parameters"]

    @property
    def repeats(self) -> int:
        return int(self.params["repeats"])

    def scenarios(self) -> list[str]:
        present = {scenario for scenario, _, _ in self.groups}
        return [s for s in SCENARIOS if s in present]

    def in_scenario(self, scenario: str, *, baselines: bool = True) -> list[Group]:
        return [g for (s, _, _), g in self.groups.items() if s == scenario and (baselines or not g.baseline)]

    def get(self, scenario: str, runner: str, config: str) -> Group | None:
        return self.groups.get((scenario, runner, config))

    def baseline(self, scenario: str, runner: str) -> Group | None:
        return next((g for g in self.in_scenario(scenario) if g.runner == runner), None)

    def system_label(self, runner: str, config: str) -> str:
        return next(g.label for g in self.groups.values() if (g.runner, g.config) == (runner, config))

    def threadpool_tokens(self) -> int | None:
        """The BackgroundTasks threadpool in force: what inprocess reported, else the API_THREADPOOL used."""
        tokens = self.results["runners"].get("inprocess", {}).get("threadpool_tokens")
        if not isinstance(tokens, int):
            tokens = self.params.get("api_threadpool")
        return tokens if isinstance(tokens, int) and tokens > 0 else None


def runner_rank(runner: str) -> tuple[int, str]:
    order = (*KNOWN_RUNNERS, *BASELINES)
    return (order.index(runner), runner) if runner in order else (len(KNOWN_RUNNERS), runner)


def summarize(results: dict[str, Any]) -> Summary:
    """Group records by scenario, runner and config, in a stable order (known runners, others, baselines)."""
    by_key: dict[tuple[str, str, str], list[Record]] = {}
    for record in results["records"]:
        by_key.setdefault((record["scenario"], record["runner"], record["config"]), []).append(record)
    configs: dict[str, set[str]] = {}
    for _, runner, config in by_key:
        configs.setdefault(runner, set()).add(config)

    def label(runner: str, config: str) -> str:
        name = DISPLAY_NAMES.get(runner, runner)
        return f"{name} ({config})" if len(configs[runner]) > 1 else name

    ordered = sorted(by_key, key=lambda k: (SCENARIOS.index(k[0]), runner_rank(k[1]), k[2]))
    groups = {
        key: Group(key[1], key[2], key[0], label(key[1], key[2]), tuple(sorted(by_key[key], key=_repeat)))
        for key in ordered
    }
    systems = sorted(
        {(k[1], k[2]) for k in ordered if k[1] not in BASELINES}, key=lambda k: (runner_rank(k[0]), k[1])
    )
    return Summary(results, groups, tuple(systems))


def _repeat(record: Record) -> int:
    return record["repeat"]


# ---------------------------------------------------------------------------------------------- phrasing


@dataclass(frozen=True)
class Finding:
    kind: str  # "alert" (missing/duplicated data), "noisy", "surprise" or "result"
    text: str
    scenario: str | None
    refs: tuple[str, ...]  # anchors of the table/figure the numbers come from


Entry = tuple[Group, Spread]


def _measured(groups: Sequence[Group], metric: Metric) -> list[Entry]:
    return [(g, s) for g in groups if (s := g.spread(metric)) is not None]


def ranking(entries: Sequence[Entry], unit: str, *, higher_is_better: bool) -> str:
    """'Dramatiq 3,100/s > Celery 1,900/s ≈ RQ 1,850/s': ≈ where neighbouring ranges overlap."""
    ordered = sorted(entries, key=lambda e: e[1].median, reverse=higher_is_better)
    out = ""
    for i, (group, spread) in enumerate(ordered):
        if i:
            same = compare(ordered[i - 1][1], spread) == 0
            out += " ≈ " if same else (" > " if higher_is_better else " < ")
        out += f"{group.tag()} {fmt_spread(spread, unit)}"
    return out


def versus(a: Entry, b: Entry, unit: str) -> str:
    """'Dramatiq 3,100/s, ×1.6 Celery (1,900/s)' or an explicit 'indistinguishable within noise'."""
    (ga, sa), (gb, sb) = a, b
    if compare(sa, sb) == 0 and min(sa.n, sb.n) < 2:
        return (
            f"{ga.tag()} ({fmt(sa.median, unit)}) and {gb.tag()} ({fmt(sb.median, unit)}) are within "
            f"{CV_NOISY:.0%} of each other on a single repeat: indistinguishable within noise"
        )
    if compare(sa, sb) == 0:
        return (
            f"{ga.tag()} ({fmt(sa.median, unit)}, range {fmt_range(sa)}) and {gb.tag()} "
            f"({fmt(sb.median, unit)}, range {fmt_range(sb)}) are indistinguishable within noise"
        )
    ratio = sa.median / sb.median if sb.median else None
    return f"{ga.tag()} {fmt(sa.median, unit)}, {fmt_ratio(ratio)} {gb.tag()} ({fmt(sb.median, unit)})"


def best(entries: Sequence[Entry], *, higher_is_better: bool) -> list[Entry]:
    """The best entry and every entry whose range overlaps it: a tie within noise."""
    if not entries:
        return []
    top = (max if higher_is_better else min)(entries, key=lambda e: e[1].median)
    return [top, *(e for e in entries if e is not top and compare(e[1], top[1]) == 0)]


def _names(entries: Sequence[Entry]) -> str:
    return " ≈ ".join(g.tag() for g, _ in entries)


# ---------------------------------------------------------------------------------------------- findings


def findings(summary: Summary) -> list[Finding]:
    """Every finding this run supports, alerts first."""
    builders = (
        completeness,
        _throughput_findings,
        _baseline_overhead,
        _email_efficiency,
        _interference,
        _slo,
        _enqueue_cost,
        _mixed,
        _footprint,
        _faults,
        _surprises,
        _noise,
    )
    out = [f for build in builders for f in build(summary)]
    order = {"alert": 0, "result": 1, "surprise": 2, "noisy": 3}
    return sorted(out, key=lambda f: order[f.kind])


def completeness(summary: Summary) -> list[Finding]:
    """Alerts for missing, duplicated or unrecorded work: what the report's top banner lists."""
    out = []
    for group in summary.groups.values():
        if group.partial:
            out.append(
                Finding(
                    "alert",
                    f"{group.label}, {group.scenario} ({group.config}): {group.problems()}. "
                    f"Its throughput and latency come from a partial run and are flagged {PARTIAL_MARK} "
                    "wherever they appear.",
                    group.scenario,
                    (table_id(group.scenario),),
                )
            )
        if len(group.records) < summary.repeats:
            out.append(
                Finding(
                    "alert",
                    f"{group.label}, {group.scenario}: only {len(group.records)} of "
                    f"{summary.repeats} repeats recorded.",
                    group.scenario,
                    (table_id(group.scenario),),
                )
            )
    for scenario in summary.scenarios():
        have = {(g.runner, g.config) for g in summary.in_scenario(scenario, baselines=False)}
        for runner, config in summary.systems:
            if (runner, config) not in have:
                out.append(
                    Finding(
                        "alert",
                        f"{summary.system_label(runner, config)} has no {scenario} record: not "
                        "measured or failed.",
                        scenario,
                        (table_id(scenario),),
                    )
                )
    measured = {runner for runner, _ in summary.systems}
    for runner in summary.params.get("runners", []):  # the planned runners, when the harness records them
        if runner not in measured:
            name = DISPLAY_NAMES.get(runner, runner)
            out.append(Finding("alert", f"{name} was planned but has no records at all.", None, ()))
    if not summary.results["complete"]:
        # The harness's own reason (an aborted runner, an interrupt) belongs in the banner too.
        reasons = [w for w in summary.results["warnings"] if w.upper().startswith("PARTIAL RUN")]
        if reasons or not out:
            notes = (
                "; ".join(_brief(w) for w in reasons or summary.results["warnings"]) or "no reason recorded"
            )
            out.append(Finding("alert", f"The harness marked this run incomplete: {notes}", None, ()))
    return out


BRIEF_CHARS = 300  # a banner line; the full text (e.g. a process log excerpt) stays in the warnings section


def _brief(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= BRIEF_CHARS else line[: BRIEF_CHARS - 1] + "… (full text under Warnings)"


def _budget_note(summary: Summary, entries: Sequence[Entry]) -> str:
    slots = summary.params["slots"]
    tokens = summary.threadpool_tokens()
    if any(g.runner == "inprocess" for g, _ in entries) and tokens != slots:
        pool = f"{tokens}-token" if tokens else "its"
        return f" (the broker runners at {slots} slots; BackgroundTasks on the API's {pool} threadpool)"
    return f" at the same {slots} slots"


def _throughput_findings(summary: Summary) -> list[Finding]:
    out = []
    # mixed is open-loop at a fixed rate, so its throughput is the offered rate; its finding is about latency.
    verbs = {"log-burst": "drained", "email-io": "sent", "cpu-heavy": "resized"}
    for scenario, verb in verbs.items():
        entries = _measured(summary.in_scenario(scenario, baselines=False), throughput)
        if len(entries) < 2:
            continue
        ordered = sorted(entries, key=lambda e: e[1].median, reverse=True)
        top, second = ordered[0], ordered[1]
        if compare(top[1], second[1]) == 0:
            head = versus(top, second, "/s")
        else:
            ratio = top[1].median / second[1].median if second[1].median else None
            head = (
                f"{top[0].tag()} {verb} {fmt(top[1].median)} tasks/s, {fmt_ratio(ratio)} {second[0].tag()} "
                f"({fmt(second[1].median, '/s')}, the runner-up)"
            )
        out.append(
            Finding(
                "result",
                f"{scenario}: {head}{_budget_note(summary, [top, second])}. "
                f"Median throughput of {repeats_text(summary.repeats)}: "
                f"{ranking(entries, '/s', higher_is_better=True)}.",
                scenario,
                (figure_id("throughput", scenario), table_id(scenario)),
            )
        )
    return out


def _baseline_overhead(summary: Summary) -> list[Finding]:
    out = []
    # email-io is bound by the SMTP sink, not the queue, so only log-burst measures queue overhead.
    for scenario in ("log-burst",):
        floor = summary.baseline(scenario, "raw-redis")
        direct = summary.baseline(scenario, "direct-call")
        if floor is None or (floor_p50 := floor.spread(latency_p50)) is None:
            continue
        floor_tput = floor.spread(throughput)
        parts = []
        for group in summary.in_scenario(scenario, baselines=False):
            p50, tput = group.spread(latency_p50), group.spread(throughput)
            if p50 is None or tput is None:
                continue
            latency_x = p50.median / floor_p50.median if floor_p50.median else None
            share = tput.median / floor_tput.median if floor_tput and floor_tput.median else None
            parts.append(
                f"{group.tag()} {fmt_ratio(latency_x)} the raw-Redis p50 round trip "
                f"({fmt(p50.median, ' ms')}), {fmt_pct(share)} of its throughput"
            )
        if not parts:
            continue
        floors = f"raw Redis {fmt(floor_p50.median, ' ms')} p50, {fmt_spread(floor_tput, '/s')}"
        if direct is not None:
            floors += f"; direct call {fmt_spread(direct.spread(throughput), '/s')}"
        out.append(
            Finding(
                "result",
                f"{scenario} overhead against the floors ({floors}): " + "; ".join(parts) + ".",
                scenario,
                (table_id(scenario), figure_id("cdf", scenario)),
            )
        )
    return out


def _email_efficiency(summary: Summary) -> list[Finding]:
    groups = summary.in_scenario("email-io", baselines=False)
    entries = _measured(groups, email_efficiency)
    if not entries:
        return []
    slots, delay = summary.params["slots"], summary.params["smtp_delay_ms"]
    ideal = slots / (delay / 1000) if delay else None
    parts = []
    for group, eff in entries:
        tput = group.spread(throughput)
        parts.append(f"{group.tag()} {fmt_spread(tput, '/s')} = {fmt_pct(eff.median)} of ideal")
    out = [
        Finding(
            "result",
            f"email-io: with a {fmt(delay, ' ms')} SMTP sink the {slots}-slot ideal is {fmt(ideal, '/s')} "
            f"({slots} / {fmt(delay, ' ms')}). " + "; ".join(parts) + ".",
            "email-io",
            (figure_id("throughput", "email-io"), table_id("email-io")),
        )
    ]
    tokens = summary.threadpool_tokens()
    for group, eff in entries:
        if group.runner == "inprocess" and eff.median > 1 and tokens and delay:
            own_ideal = tokens / (delay / 1000)
            tput = group.spread(throughput)
            own = tput.median / own_ideal if tput else None
            out.append(
                Finding(
                    "result",
                    f"BackgroundTasks are not held to the {slots}-slot budget: email-io reached "
                    f"{fmt_spread(tput, '/s')}, {fmt_ratio(eff.median)} the {slots}-slot ideal, because "
                    f"Starlette runs sync tasks on anyio's {tokens}-token threadpool (ideal {tokens} / "
                    f"{fmt(delay, ' ms')} = {fmt(own_ideal, '/s')}; {fmt_pct(own)} of that). "
                    "The same pool serves the API's sync endpoints.",
                    "email-io",
                    (figure_id("throughput", "email-io"), table_id("email-io")),
                )
            )
    return out


def _interference(summary: Summary) -> list[Finding]:
    rows = []
    for group in summary.in_scenario("cpu-heavy", baselines=False):
        idle, loaded = group.spread(probe_idle_p99), group.spread(probe_loaded_p99)
        if idle is None or loaded is None:
            continue
        rows.append((group, idle, loaded))
    if not rows:
        return []
    rows.sort(key=lambda row: row[2].median, reverse=True)
    parts = []
    for group, idle, loaded in rows:
        ratio = loaded.median / idle.median if idle.median else None
        parts.append(
            f"{possessive(group.tag())} /health p99 grew from {fmt(idle.median, ' ms')} to "
            f"{fmt_spread(loaded, ' ms')} ({fmt_ratio(ratio)})"
        )
    text = "under cpu-heavy, " + "; ".join(parts) + "."
    if len(rows) > 1:
        worst, calmest = rows[0], rows[-1]
        text += " Loaded /health p99: " + versus((worst[0], worst[2]), (calmest[0], calmest[2]), " ms") + "."
    return [Finding("result", text, "cpu-heavy", (figure_id("probe", "cpu-heavy"), table_id("cpu-heavy")))]


def _slo(summary: Summary) -> list[Finding]:
    groups = summary.in_scenario("enqueue", baselines=False)
    if not groups:
        return []
    slo, rates = summary.params["slo_ms"], summary.params["enqueue_rates"]
    parts = []
    for group in groups:
        per_repeat = [max_rate_under_slo(r) for r in group.records]
        text = f"{group.tag()} {_slo_rate(worst_slo_rate(group), rates)}"
        if len(set(per_repeat)) > 1:
            text += " (repeats disagree: " + ", ".join(_slo_rate(v, rates) for v in per_repeat) + ")"
        parts.append(text)
    tested = f"{fmt(min(rates))}–{fmt(max(rates))}/s" if len(rates) > 1 else f"{fmt(rates[0])}/s"
    return [
        Finding(
            "result",
            f"Highest enqueue rate with p99 under the {fmt(slo, ' ms')} SLO (tested {tested}, worst repeat): "
            + "; ".join(parts)
            + ".",
            "enqueue",
            (figure_id("enqueue", "enqueue"), table_id("enqueue")),
        )
    ]


def worst_slo_rate(group: Group) -> float | None:
    """The lowest max-rate-under-SLO over repeats; None if any repeat missed the SLO at every tested rate."""
    per_repeat = [max_rate_under_slo(r) for r in group.records]
    met = [v for v in per_repeat if v is not None]
    return min(met) if met and len(met) == len(per_repeat) else None


def _slo_rate(rate: float | None, rates: Sequence[float]) -> str:
    if rate is None:
        return "none of the tested rates"
    if rates and rate >= max(rates):
        return f"≥{fmt(rate, '/s')} (every tested rate)"
    return fmt(rate, "/s")


def _enqueue_cost(summary: Summary) -> list[Finding]:
    entries = _measured(summary.in_scenario("enqueue", baselines=False), enqueue_cost)
    if len(entries) < 2:
        return []
    return [
        Finding(
            "result",
            "API + broker CPU per enqueued task: " + ranking(entries, " µs", higher_is_better=False) + ".",
            "enqueue",
            (table_id("enqueue"),),
        )
    ]


def _mixed(summary: Summary) -> list[Finding]:
    entries = _measured(summary.in_scenario("mixed", baselines=False), kind_p99("write_log"))
    if len(entries) < 2:
        return []
    p = summary.params
    return [
        Finding(
            "result",
            f"mixed ({fmt(p['mixed_rate'], '/s')} for {fmt(p['mixed_duration_s'], ' s')}): light "
            "write_log tasks' end-to-end p99 while emails and resizes share the runner: "
            + ranking(entries, " ms", higher_is_better=False)
            + ".",
            "mixed",
            (table_id("mixed"), figure_id("cdf", "mixed")),
        )
    ]


def footprint_groups(summary: Summary) -> list[Group]:
    """One pseudo-group per system holding all its records, for figures that span every scenario."""
    out = []
    for runner, config in summary.systems:
        records = tuple(
            r for g in summary.groups.values() if (g.runner, g.config) == (runner, config) for r in g.records
        )
        out.append(Group(runner, config, "all", summary.system_label(runner, config), records))
    return out


def group_peaks(group: Group) -> dict[str, Spread]:
    """Process group -> its peak RSS over all scenarios, per repeat, summarised over repeats."""
    per_repeat: dict[str, dict[int, float]] = {}
    for record in group.records:
        for name, usage in record["resources"].items():
            peaks = per_repeat.setdefault(name, {})
            peaks[record["repeat"]] = max(usage["peak_rss_mb"], peaks.get(record["repeat"], 0.0))
    return {name: s for name, peaks in sorted(per_repeat.items()) if (s := Spread.of(peaks.values()))}


def footprint(group: Group) -> Spread | None:
    """Per repeat, the sum of the runner's own process groups' peaks (harness excluded); spread over repeats.

    Peaks of different processes need not coincide, so this is an upper bound of what ran at once.
    """
    per_repeat: dict[int, dict[str, float]] = {}
    for record in group.records:
        peaks = per_repeat.setdefault(record["repeat"], {})
        for name, usage in record["resources"].items():
            if name not in HARNESS_GROUPS:
                peaks[name] = max(usage["peak_rss_mb"], peaks.get(name, 0.0))
    return Spread.of(sum(peaks.values()) for peaks in per_repeat.values() if peaks)


def _footprint(summary: Summary) -> list[Finding]:
    entries = [(g, s) for g in footprint_groups(summary) if (s := footprint(g)) is not None]
    if len(entries) < 2:
        return []
    light = min(entries, key=lambda e: e[1].median)
    heavy = max(entries, key=lambda e: e[1].median)
    return [
        Finding(
            "result",
            "Ops footprint, summed peak RSS of API + workers + broker over all scenarios: "
            + ranking(entries, " MB", higher_is_better=False)
            + f"; heaviest vs lightest: {versus(heavy, light, ' MB')}.",
            None,
            (figure_id("memory"),),
        )
    ]


def _faults(summary: Summary) -> list[Finding]:
    faults = summary.results["faults"]
    out = []
    for runner in dict.fromkeys(f["runner"] for f in faults):
        rows = [f for f in faults if f["runner"] == runner]
        parts = [
            f"{f['fault']} ({f['config']}): {f['lost']} of {f['expected']} lost, "
            f"{f['reexecuted']} re-executed, {f['duplicate_effects']} duplicate effects"
            for f in rows
        ]
        name = DISPLAY_NAMES.get(runner, runner)
        kind = "alert" if any(f["duplicate_effects"] for f in rows) else "result"
        out.append(Finding(kind, f"When things break, {name}: " + "; ".join(parts) + ".", None, ("faults",)))
    return out


def _surprises(summary: Summary) -> list[Finding]:
    out = []
    floor = summary.baseline("log-burst", "raw-redis")
    floor_tput = floor.spread(throughput) if floor else None
    if floor_tput is not None:
        for group, tput in _measured(summary.in_scenario("log-burst", baselines=False), throughput):
            if compare(tput, floor_tput) > 0:
                out.append(
                    Finding(
                        "surprise",
                        f"{group.tag()} drained log-burst faster ({fmt(tput.median, '/s')}) than the "
                        f"raw-Redis floor ({fmt(floor_tput.median, '/s')}): the baseline is not a floor "
                        "here; check its consumers.",
                        "log-burst",
                        (table_id("log-burst"),),
                    )
                )
    for group, eff in _measured(summary.in_scenario("email-io", baselines=False), email_efficiency):
        if group.runner != "inprocess" and eff.low > 1.05:
            out.append(
                Finding(
                    "surprise",
                    f"{group.tag()} sent email faster than its slot budget allows "
                    f"({fmt_pct(eff.median)} of ideal): more than the configured slots were working.",
                    "email-io",
                    (table_id("email-io"),),
                )
            )
    for group in summary.in_scenario("cpu-heavy", baselines=False):
        idle, loaded = group.spread(probe_idle_p99), group.spread(probe_loaded_p99)
        if idle and loaded and compare(loaded, idle) < 0:
            out.append(
                Finding(
                    "surprise",
                    f"{possessive(group.tag())} /health p99 was lower under cpu-heavy "
                    f"({fmt(loaded.median, ' ms')}) than idle ({fmt(idle.median, ' ms')}): "
                    "the idle probe was disturbed.",
                    "cpu-heavy",
                    (figure_id("probe", "cpu-heavy"),),
                )
            )
    return out


def headline_metrics(scenario: str, summary: Summary) -> list[tuple[str, Metric]]:
    """The figures each scenario table shows; the noise check covers exactly these."""
    common: list[tuple[str, Metric]] = [
        ("throughput", throughput),
        ("p50", latency_p50),
        ("p99", latency_p99),
    ]
    extra: dict[str, list[tuple[str, Metric]]] = {
        "enqueue": [("enqueue cost", enqueue_cost)]
        + [
            (f"enqueue p99 @ {fmt(rate)}/s", enqueue_p99_at(rate)) for rate in summary.params["enqueue_rates"]
        ],
        "email-io": [("efficiency", email_efficiency)],
        "cpu-heavy": [("/health p99 idle", probe_idle_p99), ("/health p99 loaded", probe_loaded_p99)],
        "mixed": [(f"{kind} p99", kind_p99(kind)) for kind in ("write_log", "send_email", "resize_image")],
    }
    return common + extra.get(scenario, [])


def _noise(summary: Summary) -> list[Finding]:
    out = []
    if summary.repeats < 2:
        out.append(
            Finding(
                "noisy",
                "Only 1 repeat: there is no spread to judge noise by, so every comparison here is "
                "indicative only.",
                None,
                (),
            )
        )
        return out
    for scenario in summary.scenarios():
        noisy = [
            f"{group.label} {name} (CV {fmt_cv(spread)})"
            for group in summary.in_scenario(scenario)
            for name, metric in headline_metrics(scenario, summary)
            if (spread := group.spread(metric)) is not None and spread.noisy
        ]
        if noisy:
            out.append(
                Finding(
                    "noisy",
                    f"{scenario}: noisy across {repeats_text(summary.repeats)} (CV > {CV_NOISY:.0%}), "
                    "read as rough: " + "; ".join(noisy) + ".",
                    scenario,
                    (table_id(scenario),),
                )
            )
    return out


# ---------------------------------------------------------------------------------------------- how to choose


@dataclass(frozen=True)
class ChoiceRow:
    need: str
    cells: tuple[str, ...]  # one per system, in Summary.systems order
    verdict: str
    refs: tuple[str, ...]


NOT_MEASURED = "not measured in this run"


def how_to_choose(summary: Summary) -> list[ChoiceRow]:
    """Rows of needs x runners; every cell quotes a figure from this run or says it was not measured."""
    return [
        _row_light(summary),
        _row_metric(summary, "I/O-bound tasks (email)", "email-io", throughput, "/s", True, _email_cell),
        _row_metric(
            summary,
            "CPU-heavy tasks next to a live API",
            "cpu-heavy",
            probe_loaded_p99,
            " ms",
            False,
            _cpu_cell,
        ),
        _row_metric(
            summary,
            "light tasks behind heavy ones (mixed)",
            "mixed",
            kind_p99("write_log"),
            " ms",
            False,
            _mixed_cell,
        ),
        _row_faults(summary, "must survive a crash / deploy", ("kill-worker", "deploy", "broker-restart")),
        _row_faults(summary, "need retries / visibility of failures", ("task-error",)),
        _row_footprint(summary),
    ]


def _system_groups(summary: Summary, scenario: str) -> list[Group | None]:
    return [summary.get(scenario, runner, config) for runner, config in summary.systems]


def _verdict(entries: Sequence[Entry], unit: str, *, higher_is_better: bool, what: str) -> str:
    winners = best(entries, higher_is_better=higher_is_better)
    if not winners:
        return NOT_MEASURED
    top = winners[0]
    if len(winners) > 1:
        return f"{what}: {_names(winners)} (indistinguishable within noise)"
    return f"{what}: {top[0].tag()} ({fmt(top[1].median, unit)})"


def _row_light(summary: Summary) -> ChoiceRow:
    cells, entries = [], []
    rates = summary.params["enqueue_rates"]
    for runner, config in summary.systems:
        burst, enq = summary.get("log-burst", runner, config), summary.get("enqueue", runner, config)
        parts = []
        if burst and (tput := burst.spread(throughput)):
            entries.append((burst, tput))
            parts.append(
                f"{fmt_spread(tput, '/s')} drained (log-burst)"
                + (f" {PARTIAL_MARK}" if burst.partial else "")
            )
        if enq:
            slo = fmt(summary.params["slo_ms"], " ms")
            parts.append(f"{_slo_rate(worst_slo_rate(enq), rates)} under the {slo} SLO")
        cells.append("; ".join(parts) or NOT_MEASURED)
    verdict = _verdict(entries, "/s", higher_is_better=True, what="highest log-burst throughput")
    return ChoiceRow(
        "fire-and-forget, light tasks",
        tuple(cells),
        verdict,
        (figure_id("throughput", "log-burst"), figure_id("enqueue", "enqueue")),
    )


CellText = Callable[[Group, Summary], str]


def _email_cell(group: Group, summary: Summary) -> str:
    return (
        f"{fmt_spread(group.spread(throughput), '/s')} = {fmt_pct(_median(group, email_efficiency))} of the "
        f"{summary.params['slots']}-slot ideal"
    )


def _cpu_cell(group: Group, summary: Summary) -> str:
    idle, loaded = _median(group, probe_idle_p99), _median(group, probe_loaded_p99)
    ratio = loaded / idle if loaded is not None and idle else None
    return (
        f"/health p99 {fmt_spread(group.spread(probe_loaded_p99), ' ms')} under load "
        f"({fmt_ratio(ratio)} idle); {fmt_spread(group.spread(throughput), '/s')} resized"
    )


def _mixed_cell(group: Group, summary: Summary) -> str:
    return f"write_log p99 {fmt_spread(group.spread(kind_p99('write_log')), ' ms')}"


def _median(group: Group, metric: Metric) -> float | None:
    spread = group.spread(metric)
    return spread.median if spread else None


def _row_metric(
    summary: Summary,
    need: str,
    scenario: str,
    metric: Metric,
    unit: str,
    higher_is_better: bool,
    cell: CellText,
) -> ChoiceRow:
    cells, entries = [], []
    for group in _system_groups(summary, scenario):
        spread = group.spread(metric) if group else None
        if group is None or spread is None:
            cells.append(NOT_MEASURED)
            continue
        entries.append((group, spread))
        cells.append(cell(group, summary) + (f" {PARTIAL_MARK}" if group.partial else ""))
    what = {True: "highest", False: "lowest"}[higher_is_better] + f" ({scenario})"
    verdict = _verdict(entries, unit, higher_is_better=higher_is_better, what=what)
    refs = (
        figure_id("probe", scenario) if scenario == "cpu-heavy" else figure_id("throughput", scenario),
        table_id(scenario),
    )
    return ChoiceRow(need, tuple(cells), verdict, refs)


def _row_faults(summary: Summary, need: str, kinds: tuple[str, ...]) -> ChoiceRow:
    faults = [f for f in summary.results["faults"] if f["fault"] in kinds]
    cells, losses = [], []
    for runner, config in summary.systems:
        # Faults are injected per queue config; a run benchmarked in one config still shows both.
        rows = [f for f in faults if f["runner"] == runner and f["config"] == config] or [
            f for f in faults if f["runner"] == runner
        ]
        if not rows:
            cells.append(NOT_MEASURED)
            continue
        lost = sum(f["lost"] for f in rows)
        expected = sum(f["expected"] for f in rows)
        losses.append((summary.system_label(runner, config), lost, expected))
        cells.append(
            "; ".join(
                f"{f['fault']} ({f['config']}): {f['lost']}/{f['expected']} lost, "
                f"{f['reexecuted']} re-executed"
                + (f", {f['duplicate_effects']} duplicate effects" if f["duplicate_effects"] else "")
                for f in rows
            )
        )
    if not losses:
        verdict = NOT_MEASURED
    else:
        fewest = min(lost for _, lost, _ in losses)
        names = ", ".join(name for name, lost, _ in losses if lost == fewest)
        verdict = f"fewest lost ({fewest}): {names}"
    return ChoiceRow(need, tuple(cells), verdict, ("faults",))


def _row_footprint(summary: Summary) -> ChoiceRow:
    cells, entries = [], []
    for group in footprint_groups(summary):
        spread = footprint(group)
        if spread is None:
            cells.append(NOT_MEASURED)
            continue
        entries.append((group, spread))
        groups = [
            name for name, s in group_peaks(group).items() if name not in HARNESS_GROUPS and s.median > 0
        ]
        cost = summary.get("enqueue", group.runner, group.config)
        text = f"{fmt_spread(spread, ' MB')} peak RSS ({' + '.join(groups)})"
        if cost and (c := cost.spread(enqueue_cost)):
            text += f"; {fmt_spread(c, ' µs')} CPU per enqueue"
        cells.append(text)
    verdict = _verdict(entries, " MB", higher_is_better=False, what="lightest")
    return ChoiceRow("ops footprint (memory, processes)", tuple(cells), verdict, (figure_id("memory"),))
