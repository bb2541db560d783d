"""Render results.json into report.md and a self-contained report.html (inline SVG, no external resources).

The report is built from the numbers only: the findings phrase them, the charts draw them, and both
templates render the same tables so the markdown carries every number the HTML charts show.

Re-render a finished run:  python -m fbt_bench.report results/latest   (or: make report)
"""

import dataclasses
import json
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from fbt_bench.report import capacity_figures, capacity_tables, figures, header, network, scaling, tables
from fbt_bench.report.analysis import Summary, summarize, system_of
from fbt_bench.report.figures import Chart
from fbt_bench.report.findings import completeness, findings, noise_table
from fbt_bench.report.fold_faults import fold_faults
from fbt_bench.report.numbers import repeats_text, table_id
from fbt_bench.report.phrasing import Finding
from fbt_bench.report.sections import NOT_MEASURED, ScenarioSection, blurb, scenario_section
from fbt_bench.report.tables import Table
from fbt_bench.report.verdict import verdict
from fbt_bench.results import to_json
from fbt_bench.schema import SCHEMA_VERSION, validate_results

TEMPLATES = Path(__file__).with_name("templates")
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
RESULTS_JSON = "results.json"


TITLE = "When are FastAPI's BackgroundTasks enough?"
VERDICT_NOTE = (
    "Every cell comes from this run's numbers. A range is min–max over the repeats; runners whose ranges "
    "overlap share a tier and are not ranked within it. 'details' leads to the table the figure comes from."
)
# The body's findings: the most pressing first, each short enough to read at a glance; the rest go to the appendix.
KEY_FINDINGS = 12
KEY_FINDING_CHARS = 300
FINDING_ORDER = ("alert", "warning", "surprise", "result", "noisy")


def key(found: Sequence[Finding]) -> list[Finding]:
    """At most KEY_FINDINGS findings of at most KEY_FINDING_CHARS characters, alerts first."""
    # Each runner's fault outcome is the verdict's crash row and the faults table; alerts about losses stay.
    short = [
        f
        for f in found
        if len(f.text) <= KEY_FINDING_CHARS and not (f.kind == "result" and f.refs == ("faults",))
    ]
    ranked = sorted(
        short, key=lambda f: FINDING_ORDER.index(f.kind) if f.kind in FINDING_ORDER else len(FINDING_ORDER)
    )
    return ranked[:KEY_FINDINGS]


def subtitle(results: dict[str, Any], summary: Summary) -> str:
    if not summary.systems and results["faults"]:
        # A `make faults` run: its systems are its fault records', and it has no repeats of a scenario.
        faulted = ", ".join(dict.fromkeys(summary.display_name(system_of(f)) for f in results["faults"]))
        cells = len(results["faults"])
        return (
            f"{faulted} behind one identical FastAPI app, under faults ({cells} trials). Profile "
            f"{results['profile']}, measured {str(results.get('created_at', ''))[:10]}."
        )
    names = ", ".join(
        dict.fromkeys(summary.system_label(runner, config) for runner, config in summary.systems)
    )
    created = str(results.get("created_at", ""))[:10]
    return (
        f"{len(summary.systems)} systems behind one identical FastAPI app: {names}. "
        f"Profile {results['profile']}, {repeats_text(summary.repeats)}, measured {created}."
    )


@dataclass(frozen=True)
class Citation:
    anchor: str
    label: str


# ---------------------------------------------------------------------------------------------- entry points


def write_reports(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Validate the document, then write report.md and report.html into out_dir; return their paths.

    A document of an older schema_version (a committed sample, an old run) is rendered without validation:
    the schema describes only the current version, and the report reads older shapes where they differ.
    """
    if not _older_version(results):
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


def _older_version(results: dict[str, Any]) -> bool:
    version = results.get("schema_version")
    return isinstance(version, int) and not isinstance(version, bool) and 1 <= version < SCHEMA_VERSION


def main(argv: Sequence[str] | None = None) -> int:
    """python -m fbt_bench.report RUN_DIR|results.json: re-render a run's reports next to its results.json."""
    args = list(sys.argv[1:] if argv is None else argv)
    faults = None
    if len(args) == 3 and args[1] == "--faults":
        args, faults = args[:1], _results_path(Path(args[2]))
    if len(args) != 1 or args[0] in {"-h", "--help"}:
        print(
            "usage: python -m fbt_bench.report RUN_DIR (containing results.json) | PATH/results.json "
            "[--faults FAULTS_RUN_DIR]\n"
            "  --faults: put a `make faults` run's records (every trial) in place of the run's short fault "
            "pass, in results.json and both reports",
            file=sys.stderr,
        )
        return 2
    source = _results_path(Path(args[0]))
    try:
        results = json.loads(source.read_text(encoding="utf-8"))
        if faults is not None:
            results = fold_faults(results, json.loads(faults.read_text(encoding="utf-8")), faults)
            validate_results(results)
            source.write_text(to_json(results), encoding="utf-8")
        written = write_reports(results, source.parent)
    except (OSError, ValueError) as exc:  # missing file, bad JSON, schema violation: say which, exit non-zero
        print(f"cannot render {source}: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


def _results_path(target: Path) -> Path:
    return target / RESULTS_JSON if target.is_dir() else target


# ---------------------------------------------------------------------------------------------- context


def build_context(results: dict[str, Any]) -> dict[str, Any]:
    """Everything the two templates need, as plain strings and tables (no logic in the templates)."""
    # A hosts run measures every runner at several RTTs, a slot sweep at several slot counts: the scenario
    # sections show the lowest RTT and the run's own slot budget, the network and scaling sections all of them.
    summary = summarize(scaling.at_budget(network.lowest_rtt_only(results)))
    sections = [scenario_section(summary, s) for s in summary.scenarios()]
    memory, cost = figures.memory_chart(summary), capacity_figures.cost_chart(summary)
    rtt_chart, rtt_table = network.rtt_chart(results), network.rtt_table(results)
    slots_chart, slots_table = scaling.slots_chart(results), scaling.slots_table(results)
    slots_summary = scaling.summary_table(results)
    extra = [c for c in (cost, memory, rtt_chart, slots_chart) if c]
    numbered = [c for s in sections for c in s.charts] + extra
    numbered = [_numbered(c, i) for i, c in enumerate(numbered, start=1)]
    by_id = {c.id: c for c in numbered}
    for section in sections:
        section.charts = [by_id[c.id] for c in section.charts]
    memory = by_id.get(memory.id) if memory else None
    cost = by_id.get(cost.id) if cost else None
    rtt_chart = by_id.get(rtt_chart.id) if rtt_chart else None
    slots_chart = by_id.get(slots_chart.id) if slots_chart else None
    cost_table = capacity_tables.cost_table(summary)
    labels = {
        **_table_labels(sections, cost_table),
        **({rtt_table.id: "Network table"} if rtt_table else {}),
        **({slots_table.id: "Scaling table"} if slots_table else {}),
        **({slots_summary.id: "Scaling summary"} if slots_summary else {}),
        **{c.id: f"Figure {c.number}" for c in numbered},
        "what-was-run": "What was run",
        "faults": "When things break",
        "how-to-read": "How to read this report",
        "reproduce": "Reproduce",
        **({"run-warnings": "Run warnings"} if results["warnings"] else {}),
    }
    for section in sections:
        section.table = _titled(section.table, labels)
        section.more = [_titled(t, labels) for t in section.more]
    cost_table = _titled(cost_table, labels) if cost_table else None
    all_findings = findings(summary)
    key_findings = key(all_findings)
    alerts = completeness(summary)
    return {
        "title": TITLE,
        "subtitle": subtitle(results, summary),
        # A `make faults` run (faults, no scenario records) answers only the rows its faults measure; the rest
        # of a compare report (scenarios, cost, resources, the need-by-runner table) would be empty headings.
        "verdict": [row for row in verdict(summary) if row.ref or results["records"]],
        "verdict_note": VERDICT_NOTE
        + (
            ""
            if results["records"]
            else " This run only breaks things (make faults); make compare answers the rest."
        ),
        "synthetic": bool(results.get("synthetic")) or results["profile"] == "synthetic",
        "incomplete": bool(alerts) or not results["complete"],
        "banner": [(f.text, _cite(f, labels)) for f in alerts],
        # The harness's per-metric noise warnings are the noise table's rows (steady's, per fraction, stay).
        "run_warnings": [w for w in results["warnings"] if not _noise_warning(w)],
        "noise": _titled(noise, labels) if (noise := noise_table(summary)) else None,
        "header": header.header_rows(summary),
        "versions": tables.versions_table(results),
        "budget": tables.budget_table(summary),
        "budget_why": header.budget_paragraph(summary),
        "time_spent": header.time_spent_table(summary),
        "threadpool_title": header.threadpool_title(summary),
        "threadpool": header.threadpool_text(summary, labels),
        "findings": [(f.kind, f.text, _cite(f, labels)) for f in key_findings],
        "more_findings": [f for f in all_findings if f not in key_findings],
        "all_findings": [(f.kind, f.text, _cite(f, labels)) for f in all_findings],
        "choose": tables.choose_table(summary, labels),
        "sections": sections,
        "not_measured": [(s, blurb(s)) for s in summary.missing_scenarios()],
        "not_measured_text": NOT_MEASURED,
        "cost_table": cost_table,
        "cost": cost,
        "memory": memory,
        "rtt_table": rtt_table,
        "rtt_chart": rtt_chart,
        "rtt_roles": network.ROLES_TEXT,
        "slots_table": slots_table,
        "slots_summary": slots_summary,
        "slots_chart": slots_chart,
        "slots_intro": scaling.INTRO,
        "slots_findings": scaling.findings(results),
        "faults": tables.faults_table(results),
        "faults_layout": tables.faults_layout(results),
        # A `make faults` run has nothing else to show: its cells are the report, not an appendix.
        "faults_open": not results["records"],
        "faults_only": not results["records"] and bool(results["faults"]),
        "mechanisms": tables.mechanisms(results),
        "record_warnings": record_warnings(results),
        "how_to_read": header.how_to_read(summary),
        "reproduce": _reproduce(results),
        "renderer": f"fbt_bench.report on Python {platform.python_version()}",
    }


def _noise_warning(warning: str) -> bool:
    return "treat as noisy" in warning and "/steady at " not in warning


def _table_labels(sections: list[ScenarioSection], cost_table: Table | None) -> dict[str, str]:
    """Tables numbered in reading order: each section's main table, then its further tables; cost last."""
    labels: dict[str, str] = {}
    for section in sections:
        for table in (section.table, *section.more):
            labels[table.id] = f"Table {len(labels) + 1} ({section.scenario})"
    if cost_table:
        labels[cost_table.id] = f"Table {len(labels) + 1} (cost per task)"
    return labels


def _titled(table: Table, labels: dict[str, str]) -> Table:
    """The table's title led by its number, the one its citations use ("Table 3. drain: ...")."""
    number = labels.get(table.id, "").split(" (")[0]
    return dataclasses.replace(table, title=f"{number}. {table.title}") if number else table


def _numbered(chart: Chart, number: int) -> Chart:
    return Chart(chart.id, chart.title, chart.caption, chart.svg, chart.data, number)


def _cite(finding: Finding, labels: dict[str, str]) -> list[Citation]:
    cited = [Citation(ref, labels[ref]) for ref in finding.refs if ref in labels]
    if not cited and finding.scenario and table_id(finding.scenario) in labels:
        cited = [Citation(table_id(finding.scenario), labels[table_id(finding.scenario)])]
    return cited


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


def _reproduce(results: dict[str, Any]) -> dict[str, str]:
    command = results.get("command")
    note = ""
    if not command:
        command = f"make compare PROFILE={results['profile']}"
        note = "The harness did not record its command line; this is the make target for the same profile."
    return {"command": command, "note": note, "optional": OPTIONAL_PROFILES}


OPTIONAL_PROFILES = (
    "Optional profiles, not part of this run unless its profile names them: "
    f"{network.OPTIONAL_PROFILE} {scaling.OPTIONAL_PROFILE}"
)


def _oneline(value: object) -> str:
    """Multi-line text (e.g. a process log excerpt in a warning) as one markdown list item."""
    return " ⏎ ".join(line.strip() for line in str(value).splitlines() if line.strip())


def _md_cell(value: object) -> str:
    """A string safe inside a markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")
