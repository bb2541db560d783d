"""The figures of the three capacities and of cost per task: what each plots, and its caption."""

from typing import Any

from fbt_bench.report import charts
from fbt_bench.report.analysis import RepeatSet, Summary, throughput
from fbt_bench.report.capacity import (
    COST_PARTS,
    DECOMPOSITION_LABELS,
    DECOMPOSITION_PARTS,
    DECOMPOSITION_TARGET,
    cost,
    decomposition,
    drained_per_s,
    knee_found,
    max_rate_under_slo,
    slo_ms,
)
from fbt_bench.report.figures import Chart, palette
from fbt_bench.report.numbers import figure_id, fmt
from fbt_bench.report.wording import P99_MIN_N, rate_unit


def _label(group: RepeatSet) -> str:
    # Chart fonts lack the ⛔ glyph; the words carry the same flag.
    return f"{group.label} (partial)" if group.partial else group.label


def _median_repeat(group: RepeatSet) -> dict[str, Any] | None:
    """The repeat with the median max rate, so the plotted sweep is typical, not best or worst."""
    scored = sorted(
        ((v, r["repeat"], r) for r in group.records if (v := max_rate_under_slo(r)) is not None),
        key=lambda item: (item[0], item[1]),
    )
    return scored[(len(scored) - 1) // 2][2] if scored else (group.records[0] if group.records else None)


def accept_rate_chart(summary: Summary) -> Chart | None:
    groups = summary.in_scenario("accept")
    series: dict[str, list[charts.Step]] = {}
    for g in groups:
        record = _median_repeat(g)
        steps = record["extra"].get("steps", []) if record else []
        if steps:
            series[_label(g)] = [(s["rate"], s.get("p50"), s.get("p99"), s.get("max")) for s in steps]
    slo = next((v for g in groups if (v := slo_ms(g)) is not None), None)
    if not series or slo is None:
        return None
    chart_id = figure_id("accept-rate", "accept")
    title = f"accept: POST /log/ latency against offered rate (SLO p99 {fmt(slo)} ms)"
    caption = (
        "Each runner's repeat with the median capacity. Solid: p99; dotted: p50; hollow triangle: the max, "
        f"where a step had fewer than {P99_MIN_N} requests and so no p99. The red line is the SLO. Each "
        "step's request count is in results.json (extra.steps[].n)."
    )
    svg = charts.enqueue_vs_rate(chart_id, series, slo, title, palette(summary))
    return Chart(chart_id, title, caption, svg, None)


def accept_capacity_chart(summary: Summary) -> Chart | None:
    groups = summary.in_scenario("accept")
    bars = []
    for g in groups:
        s = g.spread(max_rate_under_slo)
        if s is None:
            continue
        flag = (
            "partial" if g.partial else ("no knee (≥)" if not knee_found(g) else ("noisy" if s.noisy else ""))
        )
        if s.high == 0:
            flag = "none passed"
        bars.append(charts.Bar(g.label, s.median, s.low, s.high, flag))
    if not bars:
        return None
    chart_id = figure_id("capacity", "accept")
    title = "accept: highest rate with p99 under the SLO"
    unit = rate_unit("accept", (r for g in groups for r in g.records))
    caption = (
        'Median of repeats; whiskers span min–max. "no knee (≥)": the search hit its ceiling with p99 '
        "still under the SLO, so the bar is a lower bound. Hatched bars are floors on the same route."
    )
    svg = charts.throughput_bars(chart_id, bars, title, palette(summary), unit=unit)
    return Chart(chart_id, title, caption, svg, None)


def decomposition_chart(summary: Summary) -> Chart | None:
    rows, targets = [], {}
    for g in summary.in_scenario("accept"):
        parts = {DECOMPOSITION_LABELS[p]: g.median(decomposition(p)) for p in DECOMPOSITION_PARTS}
        if any(v is None for v in parts.values()):
            continue
        values = {k: max(float(v or 0.0), 0.0) for k, v in parts.items()}
        rows.append((g.label, values))
        base = (
            values[DECOMPOSITION_LABELS["bare_route_us"]] + values[DECOMPOSITION_LABELS["library_enqueue_us"]]
        )
        targets[g.label] = base * DECOMPOSITION_TARGET
    if not rows:
        return None
    chart_id = figure_id("decomposition", "accept")
    title = "accept: API CPU per POST /log/, decomposed"
    caption = (
        "Medians of repeats, measured in the same run. The black tick is the target: "
        f"×{fmt(DECOMPOSITION_TARGET)} (bare route + library enqueue). Numbers: "
        "the decomposition table."
    )
    svg = charts.stacked_hbars(chart_id, rows, title, "CPU µs per request", reference=targets)
    return Chart(chart_id, title, caption, svg, None)


def drain_chart(summary: Summary) -> Chart | None:
    groups = summary.in_scenario("drain")
    bars = []
    for g in groups:
        s = g.spread(drained_per_s) or g.spread(throughput)
        if s is None:
            continue
        bars.append(
            charts.Bar(
                g.label, s.median, s.low, s.high, "partial" if g.partial else ("noisy" if s.noisy else "")
            )
        )
    if not bars:
        return None
    chart_id = figure_id("drain", "drain")
    title = "drain: a pre-filled queue emptied by the workers"
    unit = rate_unit("drain", (r for g in groups for r in g.records))
    caption = "Median of repeats; whiskers span min–max. Hatched bars are the floors, same N, same ledger."
    svg = charts.throughput_bars(chart_id, bars, title, palette(summary), unit=unit)
    return Chart(chart_id, title, caption, svg, None)


def cost_chart(summary: Summary) -> Chart | None:
    rows = []
    for scenario in summary.scenarios():
        for g in summary.in_scenario(scenario):
            parts = {p: v for p in COST_PARTS if (v := g.median(cost(p))) is not None}
            if parts:
                rows.append((f"{scenario} · {g.label}", parts))
    if not rows:
        return None
    chart_id = figure_id("cost")
    title = "CPU per completed task by component"
    caption = "Medians of repeats, µs of CPU per completed task. Compare bars within one scenario only."
    svg = charts.stacked_hbars(chart_id, rows, title, "CPU µs per task")
    return Chart(chart_id, title, caption, svg, None)
