"""Render results.json into report.md and a self-contained report.html (inline SVG, no external resources).

The report is built from the numbers only: findings.py phrases them, charts.py draws them, and both templates
render the same tables so the markdown carries every number the HTML charts show.

Re-render a finished run:  python -m fbt_bench.report results/latest   (or: make report)
"""

import json
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from fbt_bench import charts
from fbt_bench.findings import (
    CV_NOISY,
    DISPLAY_NAMES,
    HARNESS_GROUPS,
    NOISY_MARK,
    PARTIAL_MARK,
    ChoiceRow,
    Finding,
    Group,
    Metric,
    Summary,
    completeness,
    email_efficiency,
    enqueue_cost,
    enqueue_p50_at,
    enqueue_p99_at,
    extra_metric,
    figure_id,
    findings,
    fmt,
    fmt_cv,
    fmt_pct,
    fmt_range,
    fmt_ratio,
    fmt_spread,
    footprint,
    footprint_groups,
    group_peaks,
    how_to_choose,
    kind_p99,
    latency_p50,
    latency_p99,
    probe_idle_p99,
    probe_loaded_p99,
    repeats_text,
    runner_rank,
    summarize,
    table_id,
    throughput,
    worst_slo_rate,
)
from fbt_bench.schema import validate_results

TEMPLATES = Path(__file__).with_name("templates")
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
RESULTS_JSON = "results.json"
ANYIO_DEFAULT_TOKENS = 40  # anyio.to_thread's default limiter, what Starlette's threadpool uses

SCENARIO_BLURBS = {
    "enqueue": "Open-loop constant-arrival load on POST /log/ at several rates, timed from intended send.",
    "log-burst": "N log tasks sent as fast as the API takes them; throughput = completed / time to drain.",
    "email-io": "Emails to an SMTP sink that takes a fixed delay per message: pure I/O wait.",
    "cpu-heavy": "Image resizes while a probe hits GET /health at a fixed rate: does the API keep answering?",
    "mixed": "80% log, 15% email, 5% resize at a fixed arrival rate: do light tasks wait behind heavy ones?",
}
TOPOLOGY_NOTES = {
    "local": "the harness started Redis, the SMTP sink, the API and the workers on this machine",
    "external": "the harness drove an already running stack; resources it could not see are not measured",
}


@dataclass(frozen=True)
class Table:
    id: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    caption: str
    svg: str
    data: Table | None  # the same numbers in a table; None when the scenario table already has them
    number: int = 0


@dataclass
class ScenarioSection:
    scenario: str
    blurb: str
    table: Table
    charts: list[Chart] = field(default_factory=list)


@dataclass(frozen=True)
class Citation:
    anchor: str
    label: str


# ---------------------------------------------------------------------------------------------- entry points


def write_reports(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Validate the document, then write report.md and report.html into out_dir; return their paths."""
    validate_results(results)
    context = build_context(results)
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = _md_cell
    env.filters["oneline"] = _oneline
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, template in ((REPORT_MD, "report.md.j2"), (REPORT_HTML, "report.html.j2")):
        path = out_dir / name
        path.write_text(env.get_template(template).render(**context), encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """python -m fbt_bench.report RUN_DIR|results.json: re-render a run's reports next to its results.json."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0] in {"-h", "--help"}:
        print(
            "usage: python -m fbt_bench.report RUN_DIR (containing results.json) | PATH/results.json",
            file=sys.stderr,
        )
        return 2
    target = Path(args[0])
    source = target / RESULTS_JSON if target.is_dir() else target
    try:
        results = json.loads(source.read_text(encoding="utf-8"))
        written = write_reports(results, source.parent)
    except (OSError, ValueError) as exc:  # missing file, bad JSON, schema violation: say which, exit non-zero
        print(f"cannot render {source}: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


# ---------------------------------------------------------------------------------------------- context


def build_context(results: dict[str, Any]) -> dict[str, Any]:
    """Everything the two templates need, as plain strings and tables (no logic in the templates)."""
    summary = summarize(results)
    sections = [_scenario_section(summary, s) for s in summary.scenarios()]
    memory = _memory_chart(summary)
    numbered = [c for s in sections for c in s.charts] + ([memory] if memory else [])
    numbered = [_numbered(c, i) for i, c in enumerate(numbered, start=1)]
    by_id = {c.id: c for c in numbered}
    for section in sections:
        section.charts = [by_id[c.id] for c in section.charts]
    memory = by_id.get(memory.id) if memory else None
    tables = {s.table.id: f"Table {i} ({s.scenario})" for i, s in enumerate(sections, start=1)}
    labels = {**tables, **{c.id: f"Figure {c.number}" for c in numbered}, "faults": "When things break"}
    all_findings = findings(summary)
    alerts = completeness(summary)
    return {
        "title": "Fast Background Tasks: BackgroundTasks vs Celery vs RQ vs Dramatiq",
        "synthetic": bool(results.get("synthetic")) or results["profile"] == "synthetic",
        "incomplete": bool(alerts) or not results["complete"],
        "banner": [(f.text, _cite(f, labels)) for f in alerts],
        "run_warnings": results["warnings"],
        "header": _header(summary),
        "versions": _versions(results),
        "budget": _budget(summary),
        "threadpool": _threadpool(summary, labels),
        "findings": [(f.kind, f.text, _cite(f, labels)) for f in all_findings],
        "choose": _choose_table(summary, labels),
        "sections": sections,
        "memory": memory,
        "faults": _faults_table(results),
        "mechanisms": _mechanisms(results),
        "record_warnings": _record_warnings(results),
        "how_to_read": _how_to_read(summary),
        "reproduce": _reproduce(results),
        "renderer": f"fbt_bench.report on Python {platform.python_version()}",
    }


def _numbered(chart: Chart, number: int) -> Chart:
    return Chart(chart.id, chart.title, chart.caption, chart.svg, chart.data, number)


def _cite(finding: Finding, labels: dict[str, str]) -> list[Citation]:
    cited = [Citation(ref, labels[ref]) for ref in finding.refs if ref in labels]
    if not cited and finding.scenario and table_id(finding.scenario) in labels:
        cited = [Citation(table_id(finding.scenario), labels[table_id(finding.scenario)])]
    return cited


def _header(summary: Summary) -> list[tuple[str, str]]:
    r, env = summary.results, summary.results["environment"]
    systems = ", ".join(summary.system_label(*s) for s in summary.systems)
    baselines = sorted({g.label for g in summary.groups.values() if g.baseline})
    return [
        (
            "What",
            f"{len(summary.scenarios())} scenarios ({', '.join(summary.scenarios())}) × runners {systems}"
            + (f", baselines {', '.join(baselines)}" if baselines else "")
            + f"; {repeats_text(summary.repeats)}, {len(r['records'])} records",
        ),
        ("When (UTC)", r["created_at"]),
        (
            "Machine",
            f"{env['cpu_model']}, {env['cpu_count']} cores, {fmt(env['memory_gb'])} GB RAM; "
            f"{env['platform']}",
        ),
        ("Python / Redis server", f"{env['python']} / {env['redis_server'] or 'unknown'}"),
        ("Profile", r["profile"]),
        ("Topology", f"{r['topology']}: {TOPOLOGY_NOTES.get(r['topology'], '')}"),
        ("Complete", "yes" if r["complete"] else "NO: see the banner above"),
    ]


def _versions(results: dict[str, Any]) -> Table:
    env = results["environment"]
    rows = [("Python", env["python"]), ("Redis server", env["redis_server"] or "unknown")]
    rows += [(name, version or "not installed") for name, version in sorted(env["libraries"].items())]
    return Table("tab-versions", "Versions", ("Component", "Version"), tuple(rows))


def _describe(info: dict[str, Any]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in info.items())


def _budget(summary: Summary) -> Table:
    p = summary.params
    runners = sorted(summary.results["runners"].items(), key=lambda item: runner_rank(item[0]))
    rows = [(name_label(name), _describe(info)) for name, info in runners]
    return Table(
        "tab-budget",
        f"Equal slot budget: {p['slots']} slots = {p['worker_processes']} processes × {p['worker_threads']} "
        "threads. How each runner spends it (its describe() in this run):",
        ("Runner", "Configuration in force"),
        tuple(rows),
    )


def name_label(runner: str) -> str:
    name = DISPLAY_NAMES.get(runner, runner)
    return name if name.lower() == runner else f"{name} ({runner})"


def _threadpool(summary: Summary, labels: dict[str, str]) -> str:
    tokens, slots = summary.threadpool_tokens(), summary.params["slots"]
    default = summary.params.get("anyio_default_threadpool", ANYIO_DEFAULT_TOKENS)
    if "inprocess" not in {runner for runner, _ in summary.systems}:
        return "BackgroundTasks (inprocess) was not part of this run."
    if tokens is None:
        pool = "a threadpool whose size was not recorded"
    elif tokens == default:
        pool = f"anyio's threadpool of {tokens} tokens (anyio's default)"
    else:
        pool = f"anyio's threadpool set to {tokens} tokens (API_THREADPOOL; anyio's default is {default})"
    if tokens == slots:
        budget = (
            f"sized to the same {slots}-slot budget as the broker runners. Out of the box it would be "
            f"{default} tokens: up to {default} tasks at once, competing with requests for the API's CPU."
        )
    else:
        budget = f"outside the {slots}-slot budget the broker runners get."
    text = (
        f"Starlette runs sync BackgroundTasks inside the API process on {pool}, the same pool that serves "
        f"the API's sync endpoints; {budget}"
    )
    effects = []
    email = summary.get("email-io", "inprocess", _config_of(summary, "inprocess"))
    if email and (eff := email.spread(email_efficiency)):
        effects.append(
            f"email-io reached {fmt_spread(email.spread(throughput), '/s')}"
            + (f" [{PARTIAL_MARK}]" if email.partial else "")
            + f" = {fmt_ratio(eff.median)} the "
            f"{slots}-slot ideal ({labels.get(figure_id('throughput', 'email-io'), 'email-io')})"
        )
    cpu = summary.get("cpu-heavy", "inprocess", _config_of(summary, "inprocess"))
    if cpu and (idle := cpu.spread(probe_idle_p99)) and (loaded := cpu.spread(probe_loaded_p99)):
        effects.append(
            f"under cpu-heavy its /health p99 went from {fmt(idle.median, ' ms')} to "
            f"{fmt_spread(loaded, ' ms')} ({labels.get(figure_id('probe', 'cpu-heavy'), 'cpu-heavy')})"
        )
    return text + (" Effect in this run: " + "; ".join(effects) + "." if effects else "")


def _config_of(summary: Summary, runner: str) -> str:
    return next((c for r, c in summary.systems if r == runner), "safe")


# ---------------------------------------------------------------------------------------------- tables


def _completed(group: Group) -> str:
    text = f"{group.total('completed'):,}/{group.total('expected'):,}"
    for counter, short in (("failed", "failed"), ("duplicated", "dup")):
        if group.total(counter):
            text += f", {group.total(counter):,} {short}"
    return text + (f" {PARTIAL_MARK}" if group.partial else "")


def _tput(group: Group) -> str:
    return fmt_spread(group.spread(throughput)) + (f" {PARTIAL_MARK}" if group.partial else "")


def _common(group: Group) -> tuple[str, ...]:
    tput, p99 = group.spread(throughput), group.spread(latency_p99)
    return (
        group.label,
        _completed(group),
        _tput(group),
        fmt_range(tput),
        fmt_cv(tput),
        fmt_spread(group.spread(latency_p50)),
        fmt_spread(p99),
        fmt_range(p99),
    )


COMMON_COLUMNS = (
    "Runner",
    "Completed/expected",
    "Throughput /s",
    "min–max",
    "CV",
    "p50 ms",
    "p99 ms",
    "p99 min–max",
)


def scenario_table(summary: Summary, scenario: str) -> Table:
    """The scenario's runners: medians, spread and scenario-specific figures, noisy/partial cells flagged."""
    groups = summary.in_scenario(scenario)
    extra_columns: tuple[str, ...] = ()
    rows = []
    notes = [
        f"Medians of {repeats_text(summary.repeats)}; latency is end to end (enqueue → finished), "
        "from the ledger."
    ]
    if scenario == "enqueue":
        extra_columns = ("max rate under SLO", "API+broker CPU µs/task")
        for g in groups:
            rate = worst_slo_rate(g)
            rates_text = "none" if rate is None else fmt(rate)
            rows.append((*_common(g), rates_text, fmt_spread(g.spread(enqueue_cost))))
        notes.append(
            f"max rate under SLO: worst repeat; SLO = enqueue p99 < {fmt(summary.params['slo_ms'])} ms "
            "with no errors."
        )
    elif scenario == "log-burst":
        extra_columns = ("send s", "drain s", "p50 vs raw Redis", "throughput vs raw Redis")
        floor = summary.baseline(scenario, "raw-redis")
        floor_p50 = floor.spread(latency_p50) if floor else None
        floor_tput = floor.spread(throughput) if floor else None
        for g in groups:
            p50, tput = g.spread(latency_p50), g.spread(throughput)
            lat_x = p50.median / floor_p50.median if p50 and floor_p50 and floor_p50.median else None
            share = tput.median / floor_tput.median if tput and floor_tput and floor_tput.median else None
            rows.append(
                (
                    *_common(g),
                    fmt_spread(g.spread(extra_metric("send_s"))),
                    fmt_spread(g.spread(extra_metric("drain_s"))),
                    fmt_ratio(lat_x),
                    fmt_pct(share),
                )
            )
        notes.append(
            "Baselines are floors: raw Redis = LPUSH/BRPOP through the same Redis with the same number "
            "of consumer threads; direct call = the task function called in-process, no queue."
        )
    elif scenario == "email-io":
        extra_columns = ("efficiency vs ideal", "ideal /s")
        for g in groups:
            rows.append(
                (
                    *_common(g),
                    fmt_pct(_median(g, email_efficiency)),
                    fmt(_median(g, extra_metric("ideal_throughput_per_s"))),
                )
            )
        notes.append("ideal = slots / SMTP delay: what the slot budget allows if every slot waits on SMTP.")
    elif scenario == "cpu-heavy":
        extra_columns = ("/health p99 idle ms", "/health p99 loaded ms", "loaded/idle")
        for g in groups:
            idle, loaded = g.spread(probe_idle_p99), g.spread(probe_loaded_p99)
            ratio = loaded.median / idle.median if idle and loaded and idle.median else None
            rows.append((*_common(g), fmt_spread(idle), fmt_spread(loaded), fmt_ratio(ratio)))
    elif scenario == "mixed":
        kinds = ("write_log", "send_email", "resize_image")
        extra_columns = tuple(f"{k} p99 ms" for k in kinds)
        for g in groups:
            rows.append((*_common(g), *(fmt_spread(g.spread(kind_p99(k))) for k in kinds)))
        notes.append(
            "Open loop at a fixed rate: throughput is the offered rate unless the runner falls behind."
        )
    else:
        rows = [_common(g) for g in groups]
    if any(NOISY_MARK in cell for row in rows for cell in row):
        notes.append(
            f"{NOISY_MARK} noisy: coefficient of variation > {CV_NOISY:.0%} across repeats; read as rough."
        )
    if any(PARTIAL_MARK in cell for row in rows for cell in row):
        notes.append(
            f"{PARTIAL_MARK}: some tasks never completed or completed twice; the figure is from a partial "
            "run."
        )
    return Table(
        table_id(scenario),
        f"{scenario}: runners, medians across repeats",
        COMMON_COLUMNS + extra_columns,
        tuple(rows),
        tuple(notes),
    )


def _median(group: Group, metric: Metric) -> float | None:
    spread = group.spread(metric)
    return spread.median if spread else None


# ---------------------------------------------------------------------------------------------- charts


def _scenario_section(summary: Summary, scenario: str) -> ScenarioSection:
    section = ScenarioSection(scenario, SCENARIO_BLURBS.get(scenario, ""), scenario_table(summary, scenario))
    groups = summary.in_scenario(scenario)
    cdf = _cdf_chart(scenario, groups)
    if cdf:
        section.charts.append(cdf)
    if scenario in {"log-burst", "email-io", "cpu-heavy"}:
        section.charts.append(_throughput_chart(summary, scenario, groups))
    if scenario == "cpu-heavy":
        probe = _probe_chart(summary, groups)
        if probe:
            section.charts.append(probe)
    if scenario == "enqueue":
        section.charts.append(_enqueue_chart(summary, [g for g in groups if not g.baseline]))
    return section


def _cdf_chart(scenario: str, groups: list[Group]) -> Chart | None:
    series = {_chart_label(g): [r["cdf_ms"] for r in g.records if r["cdf_ms"]] for g in groups}
    series = {label: repeats for label, repeats in series.items() if repeats}
    if not series:
        return None
    chart_id = figure_id("cdf", scenario)
    title = f"{scenario}: end-to-end latency CDF"
    rows = []
    for g in groups:
        cells = [fmt_spread(g.spread(_pct(p))) for p in ("p50", "p90", "p99", "p999", "max")]
        rows.append((g.tag(), *cells, f"{_median(g, _pct('count')) or 0:,.0f}"))
    data = Table(
        f"{chart_id}-data",
        title,
        ("Runner", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "samples"),
        tuple(rows),
        ("Medians across repeats, from HdrHistogram.",),
    )
    caption = (
        "One line per runner and repeat (log-x); dashed lines are the baselines. Further right is slower."
    )
    return Chart(chart_id, title, caption, charts.latency_cdf(chart_id, series, title), data)


def _chart_label(group: Group) -> str:
    # Chart fonts lack the ⛔ glyph; the words carry the same flag.
    return f"{group.label} (partial)" if group.partial else group.label


def _pct(name: str) -> Metric:
    def metric(record: dict[str, Any]) -> float | None:
        shape = record["latency_ms"]
        return float(shape[name]) if shape["count"] > 0 else None

    return metric


def _throughput_chart(summary: Summary, scenario: str, groups: list[Group]) -> Chart:
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
        if tokens and tokens != p["slots"] and any(g.runner == "inprocess" for g in groups):
            references.append((f"BackgroundTasks {tokens}-token threadpool ideal", tokens / delay_s))
        caption += f" Ideal = slots / SMTP delay ({fmt(p['smtp_delay_ms'])} ms)."
    chart_id = figure_id("throughput", scenario)
    title = f"{scenario}: throughput"
    svg = charts.throughput_bars(chart_id, bars, title, references=references)
    return Chart(chart_id, title, caption + f" Numbers: {scenario} table.", svg, None)


def _representative(group: Group, metric: Metric) -> dict[str, Any] | None:
    """The repeat whose figure is the median one, so the plotted series is typical, not best or worst."""
    scored = [(v, r) for r in group.records if (v := metric(r)) is not None]
    if not scored:
        return None
    scored.sort(key=lambda pair: pair[0])
    return scored[(len(scored) - 1) // 2][1]


def _probe_chart(summary: Summary, groups: list[Group]) -> Chart | None:
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
                fmt(idle["p50"]),
                fmt(idle["p99"]),
                fmt(loaded["p50"]),
                fmt(loaded["p99"]),
                fmt(loaded["max"]),
                f"{loaded['count']:,}",
            )
        )
    if not series:
        return None
    chart_id = figure_id("probe", "cpu-heavy")
    title = f"cpu-heavy: GET /health latency over time (probe at {fmt(summary.params['probe_rate_hz'])} Hz)"
    data = Table(
        f"{chart_id}-data",
        title,
        (
            "Runner",
            "repeat shown",
            "idle p50 ms",
            "idle p99 ms",
            "loaded p50 ms",
            "loaded p99 ms",
            "loaded max ms",
            "probes",
        ),
        tuple(rows),
        ("Each runner's plotted repeat is the one with the median loaded p99.",),
    )
    caption = "Latency of each /health probe while resizes run (log-y). Spikes are the API stalling."
    return Chart(chart_id, title, caption, charts.probe_timeseries(chart_id, series, title), data)


def _enqueue_chart(summary: Summary, groups: list[Group]) -> Chart:
    rates = summary.params["enqueue_rates"]
    series, rows = {}, []
    for g in groups:
        steps = [(rate, _median(g, enqueue_p50_at(rate)), _median(g, enqueue_p99_at(rate))) for rate in rates]
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
    return Chart(chart_id, title, caption, charts.enqueue_vs_rate(chart_id, series, slo, title), data)


def _memory_chart(summary: Summary) -> Chart | None:
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
    title = "Peak RSS per process group (MB)"
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
        "Stacked peak RSS of the runner's own processes; peaks need not coincide, so totals are upper bounds."
    )
    return Chart(chart_id, title, caption, charts.memory_bars(chart_id, usage, title), data)


# ------------------------------------------------------------------------------------------- other sections


def _choose_table(summary: Summary, labels: dict[str, str]) -> Table:
    rows: list[ChoiceRow] = how_to_choose(summary)
    columns = ("Need", *(summary.system_label(*s) for s in summary.systems), "Measured best", "Source")
    return Table(
        "tab-choose",
        "How to choose (every cell is a figure from this run)",
        columns,
        tuple(
            (row.need, *row.cells, row.verdict, ", ".join(labels[r] for r in row.refs if r in labels) or "—")
            for row in rows
        ),
        (
            f"{NOISY_MARK} noisy (CV > {CV_NOISY:.0%}); {PARTIAL_MARK}: from a run with missing or "
            "duplicated tasks.",
        ),
    )


def _faults_table(results: dict[str, Any]) -> Table | None:
    faults = results["faults"]
    if not faults:
        return None
    rows = tuple(
        (
            name_label(f["runner"]),
            f["config"],
            f["fault"],
            str(f["expected"]),
            str(f["lost"]),
            str(f["reexecuted"]),
            str(f["duplicate_effects"]),
            "never" if f["recovery_s"] is None else fmt(f["recovery_s"]),
            f["notes"],
        )
        for f in faults
    )
    return Table(
        "faults",
        "When things break",
        (
            "Runner",
            "Config",
            "Fault",
            "Expected",
            "Lost",
            "Re-executed",
            "Duplicate effects",
            "Recovery s",
            "Notes",
        ),
        rows,
    )


def _mechanisms(results: dict[str, Any]) -> list[tuple[str, str]]:
    """One sentence per runner: its distinct mechanisms, each tagged with the fault and config it explains."""
    out = []
    runners = dict.fromkeys(f["runner"] for f in results["faults"])
    for runner in runners:
        parts = {}
        for f in results["faults"]:
            if f["runner"] == runner and f["mechanism"]:
                parts.setdefault(f["mechanism"].rstrip("."), []).append(f"{f['fault']}, {f['config']}")
        text = "; ".join(f"{why} ({'; '.join(where)})" for why, where in parts.items())
        out.append((name_label(runner), text + "." if text else "no mechanism recorded."))
    return out


def _record_warnings(results: dict[str, Any]) -> list[str]:
    """Each distinct warning once, with the runner, scenario and repeats it was raised for."""
    where: dict[tuple[str, str, str], list[str]] = {}
    for r in results["records"]:
        for w in r["warnings"]:
            where.setdefault((r["runner"], r["scenario"], w), []).append(str(r["repeat"]))
    return [
        f"{runner} · {scenario} · repeat {', '.join(dict.fromkeys(repeats))}: {w}"
        for (runner, scenario, w), repeats in where.items()
    ]


def _how_to_read(summary: Summary) -> list[str]:
    slots, noisy = summary.params["slots"], f"{CV_NOISY:.0%}"
    return [
        "Latency percentiles (p50, p90, p99, p99.9, max) come from HdrHistogram; end-to-end latency is "
        "enqueued_at → finished_at of each task, read from the completion ledger the tasks write themselves.",
        "Enqueue latency is open-loop: requests are sent on a fixed schedule and timed from their intended "
        "send time, so a stalled API cannot hide its queueing delay (no coordinated omission).",
        "Completion is counted from the ledger, not from the queue: completed = distinct job ids with a "
        "successful run, duplicated = ids that succeeded more than once.",
        f"Each figure is the median of {repeats_text(summary.repeats)} (runner order shuffled per repeat), "
        f"with its min–max range and coefficient of variation; {NOISY_MARK} marks CV > {noisy}.",
        "Two runners are ranked only if their min–max ranges do not overlap (with a single repeat: only if "
        f'they differ by more than {noisy}); otherwise they are "indistinguishable within noise" (≈).',
        f"Every broker runner gets the same {slots} worker slots; BackgroundTasks run on the API's "
        "threadpool (see the header). raw Redis and direct call are floors, not contenders.",
        f"{PARTIAL_MARK} marks any figure from a run where tasks went missing, failed or ran twice.",
    ]


def _reproduce(results: dict[str, Any]) -> dict[str, str]:
    command = results.get("command")
    note = ""
    if not command:
        command = f"make compare PROFILE={results['profile']}"
        note = "The harness did not record its command line; this is the make target for the same profile."
    return {
        "command": command,
        "note": note,
        "parameters": json.dumps(results["parameters"], indent=2, sort_keys=True),
    }


def _oneline(value: object) -> str:
    """Multi-line text (e.g. a process log excerpt in a warning) as one markdown list item."""
    return " ⏎ ".join(line.strip() for line in str(value).splitlines() if line.strip())


def _md_cell(value: object) -> str:
    """A string safe inside a markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


if __name__ == "__main__":
    raise SystemExit(main())
