"""Render results.json into report.md and a self-contained report.html (inline SVG, no external resources).

The report is built from the numbers only: the findings phrase them, the charts draw them, and both
templates render the same tables so the markdown carries every number the HTML charts show.

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

from fbt_bench.measuring.stats import NOISY_CV
from fbt_bench.report import figures, tables
from fbt_bench.report.analysis import (
    PARTIAL_MARK,
    Summary,
    email_efficiency,
    probe_idle_p99,
    probe_loaded_p99,
    summarize,
    system_of,
    throughput,
)
from fbt_bench.report.figures import Chart
from fbt_bench.report.findings import completeness, findings
from fbt_bench.report.numbers import (
    NOISY_MARK,
    figure_id,
    fmt,
    fmt_ratio,
    fmt_spread,
    possessive,
    repeats_text,
    table_id,
)
from fbt_bench.report.phrasing import Finding
from fbt_bench.report.tables import Table
from fbt_bench.scenarios.baselines import DISPLAY_NAMES as FLOOR_NAMES
from fbt_bench.schema import validate_results
from fbt_tasks.settings import ANYIO_DEFAULT_THREADPOOL

TEMPLATES = Path(__file__).with_name("templates")
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
RESULTS_JSON = "results.json"

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
    memory = figures.memory_chart(summary)
    numbered = [c for s in sections for c in s.charts] + ([memory] if memory else [])
    numbered = [_numbered(c, i) for i, c in enumerate(numbered, start=1)]
    by_id = {c.id: c for c in numbered}
    for section in sections:
        section.charts = [by_id[c.id] for c in section.charts]
    memory = by_id.get(memory.id) if memory else None
    table_labels = {s.table.id: f"Table {i} ({s.scenario})" for i, s in enumerate(sections, start=1)}
    labels = {
        **table_labels,
        **{c.id: f"Figure {c.number}" for c in numbered},
        "faults": "When things break",
        "how-to-read": "How to read this report",
        "reproduce": "Reproduce",
        **({"run-warnings": "Run warnings"} if results["warnings"] else {}),
    }
    all_findings = findings(summary)
    alerts = completeness(summary)
    return {
        "title": "Fast Background Tasks: "
        + " vs ".join(dict.fromkeys(summary.display_name(runner) for runner, _ in summary.systems)),
        "synthetic": bool(results.get("synthetic")) or results["profile"] == "synthetic",
        "incomplete": bool(alerts) or not results["complete"],
        "banner": [(f.text, _cite(f, labels)) for f in alerts],
        "run_warnings": results["warnings"],
        "header": _header(summary),
        "versions": tables.versions_table(results),
        "budget": tables.budget_table(summary),
        "threadpool_title": _threadpool_title(summary),
        "threadpool": _threadpool(summary, labels),
        "findings": [(f.kind, f.text, _cite(f, labels)) for f in all_findings],
        "choose": tables.choose_table(summary, labels),
        "sections": sections,
        "memory": memory,
        "faults": tables.faults_table(results),
        "mechanisms": tables.mechanisms(results),
        "record_warnings": record_warnings(results),
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
    baselines = sorted({g.label for g in summary.repeat_sets.values() if g.baseline})
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


def _scenario_section(summary: Summary, scenario: str) -> ScenarioSection:
    section = ScenarioSection(
        scenario, SCENARIO_BLURBS.get(scenario, ""), tables.scenario_table(summary, scenario)
    )
    groups = summary.in_scenario(scenario)
    cdf = figures.cdf_chart(summary, scenario, groups)
    if cdf:
        section.charts.append(cdf)
    if scenario in {"log-burst", "email-io", "cpu-heavy"}:
        section.charts.append(figures.throughput_chart(summary, scenario, groups))
    if scenario == "cpu-heavy":
        probe = figures.probe_chart(summary, groups)
        if probe:
            section.charts.append(probe)
    if scenario == "enqueue":
        section.charts.append(figures.enqueue_chart(summary, [g for g in groups if not g.baseline]))
    return section


def _threadpool_title(summary: Summary) -> str:
    in_api = summary.in_api_systems()
    return (
        f"{possessive(summary.display_name(in_api[0][0]))} threadpool" if in_api else "The API's threadpool"
    )


def _threadpool(summary: Summary, labels: dict[str, str]) -> str:
    """Where tasks that run in the API process run: its threadpool, its size against the slot budget."""
    in_api = summary.in_api_systems()
    if not in_api:
        return "No runner that runs its tasks inside the API process was part of this run."
    runner, config = in_api[0]
    name = summary.display_name(runner)
    tokens, slots = summary.threadpool_tokens(), summary.params["slots"]
    default = summary.params.get("anyio_default_threadpool", ANYIO_DEFAULT_THREADPOOL)
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
        f"Starlette runs sync {name} inside the API process on {pool}, the same pool that serves "
        f"the API's sync endpoints; {budget}"
    )
    effects = _threadpool_effects(summary, runner, config, labels)
    return text + (" Effect in this run: " + "; ".join(effects) + "." if effects else "")


def _threadpool_effects(summary: Summary, runner: str, config: str, labels: dict[str, str]) -> list[str]:
    slots, effects = summary.params["slots"], []
    email = summary.get("email-io", runner, config)
    if email and (eff := email.spread(email_efficiency)):
        effects.append(
            f"email-io reached {fmt_spread(email.spread(throughput), '/s')}"
            + (f" [{PARTIAL_MARK}]" if email.partial else "")
            + f" = {fmt_ratio(eff.median)} the "
            f"{slots}-slot ideal ({labels.get(figure_id('throughput', 'email-io'), 'email-io')})"
        )
    cpu = summary.get("cpu-heavy", runner, config)
    if cpu and (idle := cpu.spread(probe_idle_p99)) and (loaded := cpu.spread(probe_loaded_p99)):
        effects.append(
            f"under cpu-heavy its /health p99 went from {fmt(idle.median, ' ms')} to "
            f"{fmt_spread(loaded, ' ms')} ({labels.get(figure_id('probe', 'cpu-heavy'), 'cpu-heavy')})"
        )
    return effects


def record_warnings(results: dict[str, Any]) -> list[str]:
    """Each distinct warning once, with the runner, scenario and repeats it was raised for."""
    where: dict[tuple[str, str, str], list[str]] = {}
    for r in results["records"]:
        for w in r["warnings"]:
            where.setdefault((system_of(r), r["scenario"], w), []).append(str(r["repeat"]))
    return [
        f"{runner} · {scenario} · repeat {', '.join(dict.fromkeys(repeats))}: {w}"
        for (runner, scenario, w), repeats in where.items()
    ]


def _how_to_read(summary: Summary) -> list[str]:
    slots, noisy = summary.params["slots"], f"{NOISY_CV:.0%}"
    in_api = dict.fromkeys(runner for runner, _ in summary.in_api_systems())
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
        f"Every broker runner gets the same {slots} worker slots; "
        + "".join(f"{summary.display_name(r)} run on the API's threadpool (see the header). " for r in in_api)
        + f"{' and '.join(FLOOR_NAMES.values())} are floors, not contenders.",
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
