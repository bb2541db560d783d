"""The "How to choose" table: needs x runners, every cell a figure from this run or "not measured"."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fbt_bench.report.analysis import (
    HARNESS_GROUPS,
    PARTIAL_MARK,
    Metric,
    RepeatSet,
    Summary,
    email_efficiency,
    enqueue_cost,
    footprint,
    footprint_groups,
    group_peaks,
    kind_p99,
    probe_idle_p99,
    probe_loaded_p99,
    system_of,
    throughput,
    worst_slo_rate,
)
from fbt_bench.report.numbers import figure_id, fmt, fmt_pct, fmt_ratio, fmt_spread, table_id
from fbt_bench.report.phrasing import Entry, best, names, slo_rate_text


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


def _system_groups(summary: Summary, scenario: str) -> list[RepeatSet | None]:
    return [summary.get(scenario, runner, config) for runner, config in summary.systems]


def _verdict(entries: Sequence[Entry], unit: str, *, higher_is_better: bool, what: str) -> str:
    winners = best(entries, higher_is_better=higher_is_better)
    if not winners:
        return NOT_MEASURED
    top = winners[0]
    if len(winners) > 1:
        return f"{what}: {names(winners)} (indistinguishable within noise)"
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
            parts.append(f"{slo_rate_text(worst_slo_rate(enq), rates)} under the {slo} SLO")
        cells.append("; ".join(parts) or NOT_MEASURED)
    verdict = _verdict(entries, "/s", higher_is_better=True, what="highest log-burst throughput")
    return ChoiceRow(
        "fire-and-forget, light tasks",
        tuple(cells),
        verdict,
        (figure_id("throughput", "log-burst"), figure_id("enqueue", "enqueue")),
    )


CellText = Callable[[RepeatSet, Summary], str]


def _email_cell(group: RepeatSet, summary: Summary) -> str:
    return (
        f"{fmt_spread(group.spread(throughput), '/s')} = {fmt_pct(group.median(email_efficiency))} of the "
        f"{summary.params['slots']}-slot ideal"
    )


def _cpu_cell(group: RepeatSet, summary: Summary) -> str:
    idle, loaded = group.median(probe_idle_p99), group.median(probe_loaded_p99)
    ratio = loaded / idle if loaded is not None and idle else None
    return (
        f"/health p99 {fmt_spread(group.spread(probe_loaded_p99), ' ms')} under load "
        f"({fmt_ratio(ratio)} idle); {fmt_spread(group.spread(throughput), '/s')} resized"
    )


def _mixed_cell(group: RepeatSet, summary: Summary) -> str:
    return f"write_log p99 {fmt_spread(group.spread(kind_p99('write_log')), ' ms')}"


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
        rows = [f for f in faults if system_of(f) == runner and f["config"] == config] or [
            f for f in faults if system_of(f) == runner
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
