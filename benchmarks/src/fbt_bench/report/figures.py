"""The report's figures: which numbers each chart plots, its caption, and the same numbers as a table."""

from dataclasses import dataclass
from typing import Any

from fbt_bench.report import charts
from fbt_bench.report.analysis import (
    HARNESS_GROUPS,
    Metric,
    RepeatSet,
    Summary,
    enqueue_p50_at,
    enqueue_p99_at,
    footprint,
    footprint_groups,
    group_peaks,
    memory_measure,
    probe_loaded_p99,
    samples,
    throughput,
)
from fbt_bench.report.numbers import figure_id, fmt, fmt_range, fmt_spread
from fbt_bench.report.tables import Table
from fbt_bench.report.wording import P99_MIN_N, P999_MIN_N, percentile_cell, percentiles_text, rate_unit
from fbt_bench.scenarios.baselines import DISPLAY_NAMES as FLOOR_NAMES


def palette(summary: Summary) -> charts.Palette:
    """Colours by display name, runners in the report's order, so a runner keeps its colour everywhere."""
    runners = dict.fromkeys(summary.display_name(runner) for runner, _ in summary.systems)
    return charts.Palette.of(list(runners), list(FLOOR_NAMES.values()))


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    caption: str
    svg: str
    data: Table | None  # the same numbers in a table; None when the scenario table already has them
    number: int = 0


def cdf_chart(summary: Summary, scenario: str, groups: list[RepeatSet]) -> Chart | None:
    series = {_chart_label(g): [r["cdf_ms"] for r in g.records if r["cdf_ms"]] for g in groups}
    series = {label: repeats for label, repeats in series.items() if repeats}
    if not series:
        return None
    chart_id = figure_id("cdf", scenario)
    title = f"{scenario}: end-to-end latency CDF"
    rows = []
    for g in groups:
        shapes = [r["latency_ms"] for r in g.records]
        cells = [percentile_cell(shapes, p) for p in ("p50", "p90", "p99", "p999", "max")]
        rows.append((g.tag(), *cells, f"{min(samples(s) for s in shapes):,}"))
    data = Table(
        f"{chart_id}-data",
        title,
        ("Runner", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "n (fewest in a repeat)"),
        tuple(rows),
        (
            f"Medians across repeats, from HdrHistogram. No p99 below {P99_MIN_N} samples, no p99.9 below "
            f"{P999_MIN_N:,}.",
        ),
    )
    caption = (
        "One line per runner and repeat (log-x); dashed lines are the baselines. Further right is slower."
    )
    return Chart(
        chart_id, title, caption, charts.latency_cdf(chart_id, series, title, palette(summary)), data
    )


def _chart_label(group: RepeatSet) -> str:
    # Chart fonts lack the ⛔ glyph; the words carry the same flag.
    return f"{group.label} (partial)" if group.partial else group.label


def throughput_chart(summary: Summary, scenario: str, groups: list[RepeatSet]) -> Chart:
    bars = []
    for g in groups:
        s = g.spread(throughput)
        if s is None:
            continue
        flag = "partial" if g.partial else ("noisy" if s.noisy else "")
        bars.append(charts.Bar(g.label, s.median, s.low, s.high, flag))
    references: list[tuple[str, float]] = []
    p = summary.params
    caption = "Median of repeats; whiskers span min–max. Hatched bars are baselines."
    if scenario == "email-io" and p["smtp_delay_ms"]:
        delay_s = p["smtp_delay_ms"] / 1000
        references.append((f"{p['slots']}-slot ideal", p["slots"] / delay_s))
        tokens = summary.threadpool_tokens()
        pooled = {runner for runner, _ in summary.threadpool_systems()}
        in_api = [g.runner for g in groups if g.runner in pooled]
        if tokens and tokens != p["slots"] and in_api:
            name = summary.display_name(in_api[0])
            references.append((f"{name} {tokens}-token threadpool ideal", tokens / delay_s))
        caption += f" Ideal = slots / SMTP delay ({fmt(p['smtp_delay_ms'])} ms)."
    chart_id = figure_id("throughput", scenario)
    title = f"{scenario}: throughput"
    unit = rate_unit(scenario, (r for g in groups for r in g.records))
    svg = charts.throughput_bars(chart_id, bars, title, palette(summary), references=references, unit=unit)
    return Chart(chart_id, title, caption + f" Numbers: {scenario} table.", svg, None)


def _representative(group: RepeatSet, metric: Metric) -> dict[str, Any] | None:
    """The repeat whose figure is the median one, so the plotted series is typical, not best or worst."""
    scored = [(v, r) for r in group.records if (v := metric(r)) is not None]
    if not scored:
        return None
    scored.sort(key=lambda pair: pair[0])
    return scored[(len(scored) - 1) // 2][1]


def probe_chart(summary: Summary, groups: list[RepeatSet]) -> Chart | None:
    series, rows = {}, []
    for g in groups:
        record = _representative(g, probe_loaded_p99)
        if record is None or not record["extra"]["probe_timeseries"]:
            continue
        series[_chart_label(g)] = record["extra"]["probe_timeseries"]
        idle, loaded = record["extra"]["probe_idle_ms"], record["extra"]["probe_loaded_ms"]
        rows.append(
            (
                g.tag(),
                str(record["repeat"]),
                percentiles_text([idle], ""),
                percentiles_text([loaded], ""),
            )
        )
    if not series:
        return None
    chart_id = figure_id("probe", "cpu-heavy")
    title = f"cpu-heavy: GET /health latency over time (probe at {fmt(summary.params['probe_rate_hz'])} Hz)"
    data = Table(
        f"{chart_id}-data",
        title,
        ("Runner", "repeat shown", "idle /health ms", "loaded /health ms"),
        tuple(rows),
        ("Each runner's plotted repeat is the one with the median loaded p99.",),
    )
    caption = "Latency of each /health probe while resizes run (log-y). Spikes are the API stalling."
    return Chart(
        chart_id, title, caption, charts.probe_timeseries(chart_id, series, title, palette(summary)), data
    )


def enqueue_chart(summary: Summary, groups: list[RepeatSet]) -> Chart:
    rates = summary.params["enqueue_rates"]
    series, rows = {}, []
    for g in groups:
        steps = [
            (rate, g.median(enqueue_p50_at(rate)), g.median(enqueue_p99_at(rate)), None) for rate in rates
        ]
        series[_chart_label(g)] = steps
        errors = [
            sum(s["errors"] for r in g.records for s in r["extra"]["rates"] if s["rate"] == rate)
            for rate in rates
        ]
        rows.append(
            (
                g.tag(),
                *(
                    f"{fmt_spread(g.spread(enqueue_p99_at(rate)))}" + (f" ({e} errors)" if e else "")
                    for rate, e in zip(rates, errors, strict=True)
                ),
            )
        )
    slo = summary.params["slo_ms"]
    chart_id = figure_id("enqueue", "enqueue")
    title = f"enqueue: POST /log/ latency against offered rate (SLO {fmt(slo)} ms)"
    data = Table(
        f"{chart_id}-data",
        title,
        ("Runner", *(f"p99 ms @ {fmt(r)}/s" for r in rates)),
        tuple(rows),
        ("Medians across repeats; latency from the intended send time (open loop).",),
    )
    caption = "Solid: p99, dotted: p50, medians of repeats. The red line is the SLO."
    return Chart(
        chart_id, title, caption, charts.enqueue_vs_rate(chart_id, series, slo, title, palette(summary)), data
    )


def memory_chart(summary: Summary) -> Chart | None:
    systems = footprint_groups(summary)
    # The harness zero-fills groups a runner does not have (no workers in-process): leave those out.
    peaks = {
        g.label: {n: s for n, s in group_peaks(g).items() if n not in HARNESS_GROUPS and s.median > 0}
        for g in systems
    }
    groups_seen = list(dict.fromkeys(name for per_runner in peaks.values() for name in per_runner))
    if not groups_seen:
        return None
    usage = {label: {n: s.median for n, s in per_runner.items()} for label, per_runner in peaks.items()}
    rows = []
    for g in systems:
        total = footprint(g)
        cells = (fmt_spread(peaks[g.label][n]) if n in peaks[g.label] else "—" for n in groups_seen)
        rows.append((g.label, *cells, fmt_spread(total), fmt_range(total)))
    chart_id = figure_id("memory")
    measure = memory_measure(summary)
    title = f"Peak {measure} per process group (MB)"
    data = Table(
        f"{chart_id}-data",
        title,
        ("Runner", *(f"{n} MB" for n in groups_seen), "total MB", "total min–max"),
        tuple(rows),
        (
            "Each group's peak over all scenarios, median of repeats. Harness processes "
            f"({', '.join(sorted(HARNESS_GROUPS))}) are excluded.",
        ),
    )
    caption = (
        f"Stacked peak {measure} of the runner's own processes; peaks need not coincide, so totals are "
        "upper bounds."
        + (
            " PSS splits pages shared between processes (a forked worker's copy-on-write pages) among them."
            if measure == "PSS"
            else " RSS counts pages shared between forked processes once per process: an overstatement "
            "for prefork and forking workers."
        )
    )
    return Chart(chart_id, title, caption, charts.memory_bars(chart_id, usage, title, measure), data)
