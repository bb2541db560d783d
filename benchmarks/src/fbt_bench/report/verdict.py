"""The verdict: the report's first screen, one row per kind of work, generated from the run's numbers.

Each row answers the reader's question for that kind of work: are FastAPI's BackgroundTasks enough (yes, up
to a measured figure, or no), which runners do best, in tiers (runners whose min-max ranges overlap share a
tier, so no tier hides a gap), and the deciding figure with its sample count and a link to its table. Where
the run did not measure something the row says so; nothing here is written by hand.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fbt_bench.measuring.stats import Spread
from fbt_bench.report import burst as burst_section
from fbt_bench.report import cpu_sweep
from fbt_bench.report.analysis import (
    PARTIAL_MARK,
    RepeatSet,
    Summary,
    compare,
    footprint,
    footprint_groups,
    system_of,
    throughput,
)
from fbt_bench.report.capacity import drained_per_s, max_rate_under_slo
from fbt_bench.report.numbers import figure_id, fmt, repeats_text, table_id
from fbt_bench.report.tiers import tiers
from fbt_bench.report.wording import Tail, tails

NOT_MEASURED = "not measured in this run"
# What a crash, a deploy or a network cut does to accepted work: the workers killed or redeployed, the API
# redeployed, a host cut off from the broker's (a `make faults` run folded in; `make compare`'s short pass
# runs the first two).
CRASH_FAULTS = ("kill-worker", "deploy", "api-deploy", "partition")
# How many tiers a row names: the best, and the one after it, so a reader sees where the gap is.
TIERS_SHOWN = 2


@dataclass(frozen=True, slots=True)
class Ranked:
    """One system's figure in a row: its label, its spread over the repeats, and whether tasks run in the API."""

    label: str
    spread: Spread
    in_api: bool


@dataclass(frozen=True, slots=True)
class VerdictRow:
    work: str  # the kind of work, in the reader's words
    background_tasks: str  # "yes", "up to 1,200/s", "no: ...", or NOT_MEASURED
    best: str  # the top tiers: "arq, SAQ; then Dramatiq"
    deciding: str  # the figure that decides the row, with its n
    ref: str  # the anchor of the table or figure it comes from; empty where nothing was measured


def _spread(entry: Ranked) -> Spread:
    return entry.spread


def tiers_text(grouped: Sequence[Sequence[Ranked]]) -> str:
    shown = [", ".join(e.label for e in tier) for tier in grouped[:TIERS_SHOWN]]
    return "; then ".join(shown) if shown else NOT_MEASURED


def _range(spread: Spread, unit: str) -> str:
    if spread.n < 2 or spread.low == spread.high:
        return fmt(spread.median, unit)
    return f"{fmt(spread.median, unit)} ({fmt(spread.low)}–{fmt(spread.high)})"


def sustainable(summary: Summary, runner: str, config: str) -> Spread | None:
    """What a team can sustain: per repeat the lower of accept (requests/s under the SLO) and drain (tasks/s
    through the workers); where tasks run in the API there is no separate drain and accept is the figure."""
    accept = summary.get("accept", runner, config)
    if accept is None:
        return None
    if summary.runs_in_api(runner):
        return accept.spread(max_rate_under_slo)
    drain = summary.get("drain", runner, config)
    if drain is None:
        return None
    drained = {r["repeat"]: drained_per_s(r) for r in drain.records}
    return Spread.of(
        min(accepted, drained[r["repeat"]] or 0.0)
        for r in accept.records
        if (accepted := max_rate_under_slo(r)) is not None and r["repeat"] in drained
    )


def _ranked(
    summary: Summary, spread_of: Callable[[str, str], Spread | None], scenarios: Sequence[str]
) -> list[Ranked]:
    """Each system's figure, labelled with the partial mark where a record of ``scenarios`` behind it is partial."""
    found = []
    for runner, config in summary.systems:
        spread = spread_of(runner, config)
        if spread is None:
            continue
        groups = [g for s in scenarios if (g := summary.get(s, runner, config)) is not None]
        partial = any(g.partial for g in groups)
        label = summary.system_label(runner, config) + (f" {PARTIAL_MARK}" if partial else "")
        found.append(Ranked(label, spread, summary.runs_in_api(runner)))
    return found


def _split(entries: Sequence[Ranked]) -> tuple[Ranked | None, list[Ranked]]:
    """The in-API runners' best entry (by median), and the queues, whose tiers the row names."""
    in_api = [e for e in entries if e.in_api]
    queues = [e for e in entries if not e.in_api]
    return (in_api[0] if in_api else None), queues


def _rate_row(work: str, entries: Sequence[Ranked], unit: str, what: str, ref: str) -> VerdictRow:
    if not entries:
        return VerdictRow(work, NOT_MEASURED, NOT_MEASURED, NOT_MEASURED, "")
    ordered = sorted(entries, key=lambda e: e.spread.median, reverse=True)
    in_api, queues = _split(ordered)
    grouped = tiers(queues, _spread, higher_is_better=True)
    n = repeats_text(min(e.spread.n for e in entries))
    top = grouped[0][0] if grouped else None
    if in_api is None:
        answer = NOT_MEASURED
    elif top is None or compare(in_api.spread, top.spread) == 0:
        answer = f"yes: {fmt(in_api.spread.median, unit)}, as high as the best queue"
    elif in_api.spread.median > top.spread.median:
        answer = f"yes: {fmt(in_api.spread.median, unit)}, more than any queue"
    else:
        answer = f"up to {fmt(in_api.spread.median, unit)}"
    figures = [f"{e.label} {_range(e.spread, unit)}" for e in (in_api, top) if e is not None]
    return VerdictRow(work, answer, tiers_text(grouped), f"{what}: {'; '.join(figures)} ({n})", ref)


def high_rate(summary: Summary) -> VerdictRow:
    return _rate_row(
        "Light fire-and-forget tasks at a high rate",
        _ranked(summary, lambda r, c: sustainable(summary, r, c), ("accept", "drain")),
        "/s",
        "sustainable rate, the lower of accept and drain (BackgroundTasks: accept, its tasks run in the API)",
        table_id("accept"),
    )


def email(summary: Summary) -> VerdictRow:
    def spread(runner: str, config: str) -> Spread | None:
        group = summary.get("email-io", runner, config)
        return group.spread(throughput) if group else None

    return _rate_row(
        "I/O-bound tasks (email)",
        _ranked(summary, spread, ("email-io",)),
        " emails/s",
        "emails sent/s",
        table_id("email-io"),
    )


def _health_tails(summary: Summary) -> list[tuple[RepeatSet, Tail]]:
    groups = [g for runner, config in summary.systems if (g := summary.get("cpu-heavy", runner, config))]
    found = tails(*([r["extra"].get("probe_loaded_ms") for r in g.records] for g in groups))
    return [(g, t) for g, t in zip(groups, found, strict=True) if t is not None]


def cpu_heavy(summary: Summary) -> VerdictRow:
    work, ref = "CPU-heavy tasks next to a live API", table_id("cpu-heavy")
    if summary.in_scenario(cpu_sweep.SCENARIO):
        return _cpu_sweep_row(summary, work)
    measured = _health_tails(summary)
    if not measured:
        return VerdictRow(work, NOT_MEASURED, NOT_MEASURED, NOT_MEASURED, "")
    ranked = [
        Ranked(summary.system_label(g.runner, g.config), t.spread, summary.runs_in_api(g.runner))
        for g, t in measured
    ]
    in_api, queues = _split(sorted(ranked, key=lambda e: e.spread.median))
    grouped = tiers(queues, _spread, higher_is_better=False)
    label, n = measured[0][1].label, min(t.n for _, t in measured)
    params = summary.params
    slo = params.get("slo_ms")
    if in_api is None or not isinstance(slo, int | float):
        answer = NOT_MEASURED
    else:
        health = f"/health {label} {fmt(in_api.spread.median, ' ms')}"
        within = in_api.spread.median <= slo
        answer = f"{'yes at this load' if within else 'no'}: {health} {'≤' if within else '>'} {fmt(slo, ' ms')} SLO"
    load = f"{fmt(params.get('cpu_n'))} resizes at {fmt(params.get('cpu_rate_hz'))}/s"
    figures = [
        f"{e.label} {_range(e.spread, ' ms')}" for e in (in_api, grouped[0][0] if grouped else None) if e
    ]
    deciding = f"/health {label} during {load}: {'; '.join(figures)} (n={n:,} probes)"
    return VerdictRow(work, answer, tiers_text(grouped), deciding, ref)


def _cpu_sweep_row(summary: Summary, work: str) -> VerdictRow:
    """From cpu-sweep: the resize rate each runner takes before /health p99 breaks the SLO, per placement."""
    groups = [g for r, c in summary.systems if (g := summary.get(cpu_sweep.SCENARIO, r, c))]

    bounds: dict[str, str] = {}  # a ranked label marked ≥ -> the runner's plain label

    def ranked(placement: str) -> list[Ranked]:
        """Each runner's threshold; where none broke within the sweep, its highest passing rate, marked ≥."""
        found = []
        for g in groups:
            label = summary.system_label(g.runner, g.config)
            if (spread := cpu_sweep.thresholds(g, placement)) is not None:
                found.append(Ranked(label, spread, summary.runs_in_api(g.runner)))
            elif (bound := cpu_sweep.at_least(g, placement)) is not None:
                marked = f"{label} (≥ {fmt(bound.median)}/s)"
                bounds[marked] = label
                found.append(Ranked(marked, bound, summary.runs_in_api(g.runner)))
        return found

    def figure(e: Ranked) -> str:
        if e.label in bounds:
            return f"{bounds[e.label]} ≥ {fmt(e.spread.median, unit)}, no break up to the sweep's ceiling"
        return f"{e.label} {_range(e.spread, unit)}"

    unit = " resizes/s"
    shared, split = ranked("shared"), ranked("split")
    in_api, queues = _split(sorted(shared, key=lambda e: -e.spread.median))
    grouped = tiers(queues, _spread, higher_is_better=True)
    in_api_split = next((e for e in split if in_api is not None and e.label == in_api.label), None)
    if in_api is None:
        answer = NOT_MEASURED
    else:
        answer = f"up to {fmt(in_api.spread.median, unit)} (API alone on a core: " + (
            f"{fmt(in_api_split.spread.median, unit)})" if in_api_split else "not measured)"
        )
        if grouped and compare(in_api.spread, grouped[0][0].spread) >= 0:
            answer = "yes: " + answer
    n = min((cpu_sweep.probes(g) for g in groups), default=0)
    figures = [figure(e) for e in (in_api, grouped[0][0] if grouped else None) if e]
    deciding = f"resizes/s before /health p99 broke the SLO, both cores shared: {'; '.join(figures)}"
    return VerdictRow(
        work, answer, tiers_text(grouped), f"{deciding} (n≥{n:,} probes per sweep)", table_id("cpu-sweep")
    )


def burst(summary: Summary) -> VerdictRow:
    """From the burst scenario: where the backlog lived at its peak, and how long it took to clear."""
    work = "A burst larger than capacity"
    groups = [g for r, c in summary.systems if (g := summary.get(burst_section.SCENARIO, r, c))]
    if not groups:
        return VerdictRow(work, NOT_MEASURED, NOT_MEASURED, NOT_MEASURED, "")
    ranked = [
        Ranked(summary.system_label(g.runner, g.config), spread, summary.runs_in_api(g.runner))
        for g in groups
        if (spread := burst_section.recovery(g)) is not None
    ]
    in_api, queues = _split(sorted(ranked, key=lambda e: e.spread.median))
    grouped = tiers(queues, _spread, higher_is_better=False)
    in_api_groups = [g for g in groups if summary.runs_in_api(g.runner)]
    told = []
    for g in in_api_groups:
        name, turned_away = summary.system_label(g.runner, g.config), burst_section.refused(g)
        if turned_away:
            told.append(f"{name} refused {fmt(turned_away)} requests")
        else:
            told.append(f"{name} held {fmt(burst_section.peak(g, 'in_api'))} tasks in the API's memory")
    refusing = any(burst_section.refused(g) for g in in_api_groups)
    answer = (
        (("no: " if refusing else "only if losing them is acceptable: ") + "; ".join(told))
        if told
        else NOT_MEASURED
    )
    figures = [
        f"{e.label} {_range(e.spread, ' s')}" for e in (in_api, grouped[0][0] if grouped else None) if e
    ]
    offered = groups[0].records[0]["extra"]
    deciding = (
        f"recovery after {fmt(offered.get('offered_rate'), '/s')} of email for {fmt(offered.get('burst_s'), ' s')}: "
        f"{'; '.join(figures)} ({repeats_text(min(e.spread.n for e in ranked))})"
    )
    return VerdictRow(work, answer, tiers_text(grouped), deciding, table_id(burst_section.SCENARIO))


def crash(summary: Summary) -> VerdictRow:
    """Kill-worker, deploy, api-deploy and partition in the safe configuration: lost (never ran), held (still
    in the broker when the watch ended, due back later), counted from the ledger; tiers do not apply to
    counts, so the row names the systems that lost and held nothing."""
    work = "Work that must survive a crash, a deploy or a network cut"
    cells = [f for f in summary.results["faults"] if f["fault"] in CRASH_FAULTS and f["config"] == "safe"]
    if not cells:
        return VerdictRow(work, NOT_MEASURED, NOT_MEASURED, NOT_MEASURED, "")
    by_system: dict[str, list[dict[str, Any]]] = {}
    for cell in cells:
        by_system.setdefault(system_of(cell), []).append(cell)

    def total(system: str, field: str) -> int:
        return sum(int(cell.get(field) or 0) for cell in by_system[system])

    in_api = [s for s in by_system if summary.runs_in_api(s)]
    losing = [f"{summary.display_name(s)} lost {total(s, 'lost')} of {total(s, 'expected')}" for s in in_api]
    if any(total(s, "lost") for s in in_api):
        answer = "no: " + "; ".join(losing)
    else:
        answer = (
            f"yes: {', '.join(summary.display_name(s) for s in in_api)} lost none" if in_api else NOT_MEASURED
        )
    brokers = [s for s in by_system if s not in in_api]
    safe = [summary.display_name(s) for s in brokers if not total(s, "lost") and not total(s, "held")]
    held = [summary.display_name(s) for s in brokers if not total(s, "lost") and total(s, "held")]
    best = ", ".join(safe) or "no runner lost and held nothing"
    if held:
        best += f"; held jobs still due when the watch ended: {', '.join(held)}"
    trials = max(int(cell.get("trial") or 1) for cell in cells)
    # A watch that ended with nothing missing needed no more time, whatever the bound (older records flag it).
    short = sum(
        1
        for cell in cells
        if cell.get("watch_covers_bound") is False and (cell.get("lost") or cell.get("held"))
    )
    kinds = ", ".join(k for k in CRASH_FAULTS if any(cell["fault"] == k for cell in cells))
    deciding = f"jobs lost of those accepted, {kinds}, up to {trials} trial(s) per cell"
    if short:
        deciding += f"; {short} watch(es) ended before the library's redelivery bound"
    return VerdictRow(work, answer, best, deciding, "faults")


def footprint_row(summary: Summary) -> VerdictRow:
    work, ref = "A small operational footprint", figure_id("memory")
    ranked = []
    for group in footprint_groups(summary):
        spread = footprint(group)
        if spread is not None:
            label = summary.system_label(group.runner, group.config)
            ranked.append(Ranked(label, spread, summary.runs_in_api(group.runner)))
    if not ranked:
        return VerdictRow(work, NOT_MEASURED, NOT_MEASURED, NOT_MEASURED, "")
    in_api, queues = _split(sorted(ranked, key=lambda e: e.spread.median))
    grouped = tiers(queues, _spread, higher_is_better=False)
    answer = NOT_MEASURED
    if in_api is not None:
        answer = f"yes: no broker and no worker to run; {fmt(in_api.spread.median, ' MB')} in all"
    n = repeats_text(min(e.spread.n for e in ranked))
    figures = [
        f"{e.label} {_range(e.spread, ' MB')}" for e in (in_api, grouped[0][0] if grouped else None) if e
    ]
    deciding = f"peak memory of every process it needs: {'; '.join(figures)} ({n})"
    return VerdictRow(work, answer, tiers_text(grouped), deciding, ref)


def verdict(summary: Summary) -> list[VerdictRow]:
    rows = (high_rate, email, cpu_heavy, burst, crash, footprint_row)
    return [row(summary) for row in rows]
