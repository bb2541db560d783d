"""The tables of the three capacities (accept, drain, steady), the API cost decomposition and cost per task.

Every percentile carries its sample count (``wording``); every rate its word (accepted/s, drained/s,
completed/s); floors sit in the same tables only where they ran the same path.
"""

from collections.abc import Sequence

from fbt_bench.measuring.stats import NOISY_CV
from fbt_bench.report.analysis import PARTIAL_MARK, RepeatSet, Summary, latency_p50, throughput
from fbt_bench.report.capacity import (
    COST_PARTS,
    DECOMPOSITION_TARGET,
    FIDELITY_TARGET,
    at_common_rate,
    at_fraction,
    below_noise,
    cost,
    cpu_fidelity_ratio,
    decomposition,
    decomposition_ratio,
    drained_per_s,
    fidelity_ratio,
    first_to_last_s,
    fractions,
    kept_up_pct,
    knee_found,
    loadgen_cpu,
    max_rate_under_slo,
    offered_text,
    runs_tasks_in_api,
    slo_ms,
    startup_cpu_s,
    tasks_per_core,
)
from fbt_bench.report.numbers import (
    NOISY_MARK,
    fmt,
    fmt_cv,
    fmt_pct,
    fmt_range,
    fmt_ratio,
    fmt_spread,
    repeats_text,
    table_id,
)
from fbt_bench.report.tables import Table
from fbt_bench.report.wording import P99_MIN_N, rate_unit, tail_cell


def _flag(group: RepeatSet, text: str) -> str:
    return text + (f" {PARTIAL_MARK}" if group.partial else "")


def _completed(group: RepeatSet) -> str:
    return _flag(group, f"{group.total('completed'):,}/{group.total('expected'):,}")


def _notes(summary: Summary, rows: Sequence[tuple[str, ...]], *notes: str) -> tuple[str, ...]:
    out = [f"Medians of {repeats_text(summary.repeats)}.", *notes]
    if any(NOISY_MARK in cell for row in rows for cell in row):
        out.append(f"{NOISY_MARK} noisy: coefficient of variation > {NOISY_CV:.0%} across repeats.")
    if any(PARTIAL_MARK in cell for row in rows for cell in row):
        out.append(f"{PARTIAL_MARK}: some tasks never completed or completed twice in this scenario.")
    return tuple(out)


def accept_table(summary: Summary) -> Table:
    groups = summary.in_scenario("accept")
    unit = rate_unit("accept", (r for g in groups for r in g.records))
    rows = []
    for g in groups:
        rate = g.spread(max_rate_under_slo)
        knee = "yes" if knee_found(g) else "no: search ceiling, a lower bound"
        if rate is not None and rate.high == 0:
            knee = "no: no step passed, not even the lowest rate tried"
        steps = [
            s for r in g.records for s in r["extra"].get("steps", []) if rate and s["rate"] == rate.median
        ]
        rows.append(
            (
                g.label,
                _flag(g, fmt_spread(rate)),
                fmt_range(rate),
                knee,
                fmt(slo_ms(g), " ms"),
                tail_cell(steps),
                fmt_spread(g.spread(loadgen_cpu)),
                fmt_spread(g.spread(cost("api"))),
            )
        )
    notes = _notes(
        summary,
        rows,
        "Max rate under SLO: the highest offered rate whose POST /log/ p99 stayed under the SLO with no "
        "errors, found by doubling then bisection, workers running. Tail at that rate: p99 from "
        f"{P99_MIN_N} requests up, else the max.",
        "Floors run the same route; capacities are ranked, never divided (the search steps differ).",
    )
    columns = (
        "Runner",
        f"max {unit} under SLO",
        "min–max",
        "knee found",
        "SLO",
        "tail at that rate ms (n)",
        "load generator CPU µs/request",
        "API CPU µs/task",
    )
    return Table(
        table_id("accept"), "accept: capacity of POST /log/ under the SLO", columns, tuple(rows), notes
    )


def decomposition_table(summary: Summary) -> Table | None:
    groups = [g for g in summary.in_scenario("accept") if g.spread(decomposition("api_us"))]
    if not groups:
        return None
    rows = []
    for g in groups:
        ratio, api = g.spread(decomposition_ratio), g.spread(decomposition("api_us"))
        verdict = "n/a" if ratio is None else ("within" if ratio.median <= DECOMPOSITION_TARGET else "over")
        target = f"{verdict} ×{fmt(DECOMPOSITION_TARGET)}" if ratio is not None else "n/a"
        if runs_tasks_in_api(summary, g):
            target = "n/a: the API runs the tasks too"
        share = g.spread(decomposition("project_us"))
        share_cell = fmt_spread(share)
        if below_noise(g):
            share_cell = "below noise"
        rate_cell = fmt(g.median(decomposition("rate")), "/s")
        rows.append(
            (
                g.label,
                rate_cell if at_common_rate(g) else f"{rate_cell} (not every repeat: its knee was too low)",
                fmt_spread(g.spread(decomposition("bare_route_us"))),
                fmt_spread(g.spread(decomposition("library_enqueue_us"))),
                share_cell,
                f"{fmt_spread(api)} ({fmt_range(api)})",
                fmt_ratio(ratio.median) if ratio else "n/a",
                target,
            )
        )
    notes = _notes(
        summary,
        rows,
        "API CPU per POST /log/, every runner at one offered rate: the bare route is the project's own app "
        "with an enqueue that does nothing, served the same way at the same rate; the library enqueue is the "
        "thread CPU the API process spent inside the runner's enqueue call in the same window; the project's "
        "share is the rest, so the three add up to the API's CPU. Medians of the repeats, API min–max in "
        "brackets; a share smaller than its own spread across repeats, or not above zero (the bare route measured "
        'dearer than the API without the library call), reads "below noise" (results.json keeps the figures). '
        "Ratio = API / (bare route + library enqueue).",
    )
    columns = (
        "Runner",
        "at rate",
        "bare route µs",
        "library enqueue µs",
        "project µs",
        "API µs (min–max)",
        "ratio",
        "target",
    )
    return Table(
        table_id("accept", "cost"), "accept: API CPU per request, decomposed", columns, tuple(rows), notes
    )


def _record_notes(groups: Sequence[RepeatSet]) -> list[str]:
    """What a record says about how it was measured differently (extra.notes), once per runner."""
    out: list[str] = []
    for g in groups:
        notes = dict.fromkeys(n for r in g.records if isinstance(n := r["extra"].get("notes"), str) and n)
        out.extend(f"{g.label}: {note}." for note in notes)
    return out


def drain_table(summary: Summary) -> Table:
    groups = summary.in_scenario("drain")
    unit = rate_unit("drain", (r for g in groups for r in g.records))
    rows = []
    for g in groups:
        rate = g.spread(drained_per_s) or g.spread(throughput)
        ns = {r["extra"].get("n", r["expected"]) for r in g.records}
        rows.append(
            (
                g.label,
                ", ".join(f"{n:,}" for n in sorted(ns)),
                _completed(g),
                _flag(g, fmt_spread(rate)),
                fmt_range(rate),
                fmt_cv(rate),
                fmt_spread(g.spread(first_to_last_s)),
                _reference_cell(g),
            )
        )
    notes = _notes(
        summary,
        rows,
        "N jobs enqueued through the runner's own client with its workers stopped, then the workers "
        "started; rate from the first to the last completion in the ledger. No HTTP.",
        *(
            [
                f"{', '.join(summary.system_label(r, c) for r, c in summary.in_api_systems())}: no row, no "
                "queue to pre-fill: their tasks run in the API, so a backlog lives in its memory and arrives no "
                "faster than it accepts (accept is their capacity)."
            ]
            if summary.in_api_systems()
            else []
        ),
        _fidelity_note(groups),
        *_record_notes(groups),
    )
    columns = (
        "Runner",
        "N",
        "Completed/expected (all repeats)",
        unit,
        "min–max",
        "CV",
        "first → last s",
        "fidelity against the library's own worker (min–max)",
    )
    return Table(
        table_id("drain"), "drain: how fast the workers empty a full queue", columns, tuple(rows), notes
    )


def _reference_cell(group: RepeatSet) -> str:
    ratio, cpu = group.spread(fidelity_ratio), group.spread(cpu_fidelity_ratio)
    if ratio is None and cpu is None:
        in_api = any(r["extra"].get("notes") for r in group.records)
        return "n/a: tasks run in the API, no library worker" if in_api else "not measured"
    judged = cpu if cpu is not None else ratio
    assert judged is not None
    below = f", below ×{fmt(FIDELITY_TARGET)}" if judged.median < FIDELITY_TARGET else ""
    rate = f"{fmt_ratio(ratio.median)} ({fmt_range(ratio)})" if ratio is not None else "n/a"
    if cpu is None:
        return f"{rate}{below}"
    return f"CPU {fmt_ratio(cpu.median)} ({fmt_range(cpu)}){below}; rate {rate}"


def _fidelity_note(groups: Sequence[RepeatSet]) -> str:
    """How the run measured fidelity: paired (both sides at once) or, in files before it, one after the other."""
    references = [r["extra"].get("reference") or {} for g in groups for r in g.records]
    measured = [ref for ref in references if ref]
    target = (
        f"Medians of the repeats; a median below ×{fmt(FIDELITY_TARGET)} says so: there the project costs the "
        "library more than the 10% it may."
    )
    if measured and all(ref.get("method") == "paired" for ref in measured):
        return (
            "Fidelity: in each repeat the runner's workers and the library's own minimal worker (its CLI, its "
            "client, a task doing the same two appends, no project code; the runner's layout, broker and "
            "queue-config options) drained as many jobs each as the runner drained alone in a few seconds, "
            "at the same time, so both met the same machine. Over the window both were draining in (each "
            "side's first and last tenth left out): CPU = the library's workers' CPU per job ÷ the runner's "
            "(what the project costs the library, however the scheduler split the cores between the two; "
            f"judged against the floor); rate = the runner's completions ÷ the library's. {target}"
        )
    return (
        "Fidelity: the same N jobs through the library's minimal worker (its CLI, its client, a task doing "
        "the same two appends, no project code), at the runner's layout, broker and queue-config options, "
        f"in the same repeat, one drain after the other; runner ÷ that. {target}"
    )


def steady_table(summary: Summary) -> Table:
    rows = []
    for fraction in fractions(summary):
        for group in summary.in_scenario("steady"):
            g = at_fraction(group, fraction)
            if g is None:
                continue
            kinds = sorted({k for r in g.records for k in r["extra"].get("latency_by_kind", {})})
            by_kind = "; ".join(
                f"{k} {tail_cell(r['extra']['latency_by_kind'].get(k) for r in g.records)}" for k in kinds
            )
            rows.append(
                (
                    g.label,
                    fmt_pct(fraction),
                    offered_text(g),
                    _flag(g, fmt_spread(g.spread(kept_up_pct), "%")),
                    fmt_spread(g.spread(latency_p50)),
                    tail_cell(r["latency_ms"] for r in g.records),
                    by_kind or "n/a",
                )
            )
    notes = _notes(
        summary,
        rows,
        "Open-loop arrivals at a fraction of each runner's own capacity (the lower of its accept knee and "
        "drain rate), warm-up excluded. Offered rates differ by runner (and by repeat, as each repeat's "
        "capacity does: min–max shown), so rows are not ranked against each other. Completed ÷ offered is "
        "100% for a runner that kept up. Latency is end to end (enqueue → finished), from the ledger.",
    )
    columns = (
        "Runner",
        "fraction",
        "offered",
        "completed ÷ offered",
        "p50 ms",
        "tail ms (n)",
        "tail by kind ms (n)",
    )
    return Table(
        table_id("steady"), "steady: latency at a fixed share of capacity", columns, tuple(rows), notes
    )


def cost_table(summary: Summary) -> Table | None:
    rows = []
    for scenario in summary.scenarios():
        for g in summary.in_scenario(scenario):
            total = g.spread(cost("total"))
            if total is None:
                continue
            parts = (fmt_spread(g.spread(cost(part))) for part in COST_PARTS)
            startup = g.spread(startup_cpu_s)
            rows.append(
                (
                    scenario,
                    g.label,
                    *parts,
                    fmt_spread(total),
                    fmt_spread(g.spread(tasks_per_core)),
                    fmt_spread(startup, " s") if startup else "",
                )
            )
    if not rows:
        return None
    notes = _notes(
        summary,
        rows,
        "CPU microseconds per completed task by process group, from the resource sampler; n/a where a "
        "group was not part of the path (no API in drain, no broker in-process). Tasks per second per "
        "core = 1,000,000 / total. Compare within a scenario: the paths differ between scenarios. A drain "
        "counts from the moment its workers reported ready; their start-up (every group's CPU from their "
        "start until then) is its own column, not spread over the tasks.",
    )
    columns = (
        "Scenario",
        "Runner",
        "API µs",
        "broker µs",
        "workers µs",
        "total µs",
        "tasks/s per core",
        "workers' start-up CPU",
    )
    return Table("tab-cost", "Cost per task by component", columns, tuple(rows), notes)
