"""The "How to choose" table: needs x runners, every cell a figure from this run or "not measured"."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fbt_bench.measuring.stats import Spread
from fbt_bench.report.analysis import (
    HARNESS_GROUPS,
    PARTIAL_MARK,
    Metric,
    RepeatSet,
    Summary,
    email_efficiency,
    footprint,
    footprint_groups,
    group_peaks,
    kind_shape,
    memory_measure,
    system_of,
    throughput,
)
from fbt_bench.report.capacity import (
    at_fraction,
    cost,
    drained_per_s,
    fractions,
    knee_found,
    max_rate_under_slo,
    offered_text,
    slo_ms,
    tasks_per_core,
)
from fbt_bench.report.numbers import figure_id, fmt, fmt_pct, fmt_spread, repeats_text, table_id
from fbt_bench.report.phrasing import Entry, best, names
from fbt_bench.report.wording import percentiles_text, rate_unit, tails


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
        _row_spread(
            summary, "take light tasks at a high request rate", "accept", max_rate_under_slo, _accept_cell
        ),
        _row_spread(summary, "work off a backlog", "drain", drained_per_s, _drain_cell),
        _row_steady(summary),
        _row_spread(summary, "I/O-bound tasks (email)", "email-io", throughput, _email_cell),
        _row_tail(summary, "CPU-heavy tasks next to a live API", "cpu-heavy", _probe_loaded),
        _row_tail(summary, "light tasks behind heavy ones (mixed)", "mixed", _write_log),
        _row_faults(summary, "must survive a crash / deploy", ("kill-worker", "deploy", "broker-restart")),
        _row_faults(summary, "need retries / visibility of failures", ("task-error",)),
        _row_cost(summary),
        _row_footprint(summary),
    ]


REFS = {
    "accept": (table_id("accept"), figure_id("capacity", "accept")),
    "drain": (table_id("drain"), figure_id("drain", "drain")),
    "steady": (table_id("steady"),),
    "email-io": (figure_id("throughput", "email-io"), table_id("email-io")),
    "cpu-heavy": (figure_id("probe", "cpu-heavy"), table_id("cpu-heavy")),
    "mixed": (table_id("mixed"),),
}


def _system_groups(summary: Summary, scenario: str) -> list[RepeatSet | None]:
    return [summary.get(scenario, runner, config) for runner, config in summary.systems]


def _verdict(entries: Sequence[Entry], unit: str, *, higher_is_better: bool, what: str) -> str:
    winners = best(entries, higher_is_better=higher_is_better)
    if not winners:
        return NOT_MEASURED
    top = winners[0]
    n = repeats_text(min(s.n for _, s in entries))
    if len(winners) > 1:
        return f"{what}: {names(winners)} (indistinguishable within noise, {n})"
    return f"{what}: {top[0].tag()} ({fmt(top[1].median, unit)}; ranges apart across {n})"


CellText = Callable[[RepeatSet, Spread, Summary], str]


def _accept_cell(group: RepeatSet, spread: Spread, summary: Summary) -> str:  # noqa: ARG001 (one signature for every builder of its kind)
    bound = "" if knee_found(group) else "≥"
    unit = " " + rate_unit("accept", group.records)
    return f"{bound}{fmt_spread(spread, unit)} with p99 under {fmt(slo_ms(group), ' ms')}"


def _drain_cell(group: RepeatSet, spread: Spread, summary: Summary) -> str:  # noqa: ARG001 (one signature for every builder of its kind)
    return fmt_spread(spread, " " + rate_unit("drain", group.records))


def _email_cell(group: RepeatSet, spread: Spread, summary: Summary) -> str:
    return (
        f"{fmt_spread(spread, ' completed/s')} = {fmt_pct(group.median(email_efficiency))} of the "
        f"{summary.params['slots']}-slot ideal"
    )


NO_QUEUE = "n/a: tasks run in the API, no queue to pre-fill"


def _row_spread(summary: Summary, need: str, scenario: str, metric: Metric, cell: CellText) -> ChoiceRow:
    cells, entries = [], []
    for (runner, _), group in zip(summary.systems, _system_groups(summary, scenario), strict=True):
        spread = group.spread(metric) if group else None
        if scenario == "drain" and summary.runs_in_api(runner):
            cells.append(NO_QUEUE)
            continue
        if group is None or spread is None:
            cells.append(NOT_MEASURED)
            continue
        entries.append((group, spread))
        cells.append(cell(group, spread, summary) + (f" {PARTIAL_MARK}" if group.partial else ""))
    unit = " " + rate_unit(scenario, (r for g, _ in entries for r in g.records))
    verdict = _verdict(entries, unit, higher_is_better=True, what=f"highest ({scenario})")
    return ChoiceRow(need, tuple(cells), verdict, REFS[scenario])


def _row_steady(summary: Summary) -> ChoiceRow:
    top = max(fractions(summary), default=None)
    cells = []
    for group in _system_groups(summary, "steady"):
        g = at_fraction(group, top) if group and top is not None else None
        if g is None:
            cells.append(NOT_MEASURED)
            continue
        shapes = [r["latency_ms"] for r in g.records]
        cells.append(f"at {offered_text(g)}: {percentiles_text(shapes)}")
    verdict = (
        NOT_MEASURED
        if top is None
        else f"not ranked: each runner at {fmt_pct(top)} of its own capacity, so offered loads differ"
    )
    return ChoiceRow("latency at a steady load", tuple(cells), verdict, REFS["steady"])


Shapes = Callable[[RepeatSet], list[dict[str, Any] | None]]


def _probe_loaded(group: RepeatSet) -> list[dict[str, Any] | None]:
    return [r["extra"].get("probe_loaded_ms") for r in group.records]


def _write_log(group: RepeatSet) -> list[dict[str, Any] | None]:
    return [kind_shape(r, "write_log") for r in group.records]


def _row_tail(summary: Summary, need: str, scenario: str, shapes: Shapes) -> ChoiceRow:
    groups = _system_groups(summary, scenario)
    found = tails(*(shapes(g) if g else [] for g in groups))
    cells, entries = [], []
    for group, tail in zip(groups, found, strict=True):
        if group is None or tail is None:
            cells.append(NOT_MEASURED)
            continue
        entries.append((group, tail.spread))
        what = "/health" if scenario == "cpu-heavy" else "write_log"
        cells.append(f"{what} {tail.text()}" + (f" {PARTIAL_MARK}" if group.partial else ""))
    label = next((t.label for t in found if t), "tail")
    verdict = _verdict(entries, " ms", higher_is_better=False, what=f"lowest {label} ({scenario})")
    return ChoiceRow(need, tuple(cells), verdict, REFS[scenario])


def _row_cost(summary: Summary) -> ChoiceRow:
    cells, entries = [], []
    for group in _system_groups(summary, "drain"):
        spread = group.spread(cost("total")) if group else None
        if group is None or spread is None:
            cells.append(NOT_MEASURED)
            continue
        entries.append((group, spread))
        per_core = group.spread(tasks_per_core)
        cells.append(f"{fmt_spread(spread, ' µs')} CPU per task; {fmt_spread(per_core)} tasks/s per core")
    verdict = _verdict(entries, " µs", higher_is_better=False, what="cheapest (drain)")
    return ChoiceRow("CPU per task (drain)", tuple(cells), verdict, ("tab-cost", figure_id("cost")))


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
        cells.append(f"{fmt_spread(spread, ' MB')} peak {memory_measure(summary)} ({' + '.join(groups)})")
    verdict = _verdict(entries, " MB", higher_is_better=False, what="lightest")
    return ChoiceRow("ops footprint (memory, processes)", tuple(cells), verdict, (figure_id("memory"),))
