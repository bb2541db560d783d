"""The benchmark report: schema, findings from numbers, banners, self-contained HTML. No processes."""

import copy
import json
import re
from pathlib import Path

import pytest
from bench_fixtures import example_results
from jsonschema import Draft202012Validator

from fbt_bench.report import main, write_reports
from fbt_bench.report.analysis import summarize
from fbt_bench.report.capacity_tables import decomposition_table, drain_table
from fbt_bench.report.choose import how_to_choose
from fbt_bench.report.findings import builders, completeness, findings
from fbt_bench.report.tables import budget_table
from fbt_bench.report.wording import percentile_cell, percentiles_text, rate_unit, tail, tails
from fbt_bench.schema import ResultsSchemaError, load_schema, validate_results

MD_SECTIONS = (
    "## The answer, by kind of work",
    "## Key findings",
    "## What was run",
    "## Results by scenario",
    "## Cost per task",
    "## Resources",
    "## When things break",
    "## How to read this report",
    "## Appendix",
    "### Reproduce",
)
REPO = Path(__file__).resolve().parents[1]
EXTERNAL = re.compile(r"""\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def _records(doc, runner, scenario):
    return [r for r in doc["records"] if r["runner"] == runner and r["scenario"] == scenario]


def _texts(doc, kind=None):
    return [f.text for f in findings(summarize(doc)) if kind is None or f.kind == kind]


@pytest.fixture(scope="module")
def complete_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("complete")
    paths = write_reports(example_results(), out)
    return {p.name: p.read_text(encoding="utf-8") for p in paths}


@pytest.fixture(scope="module")
def partial_report(tmp_path_factory):
    """Rendered through the CLI entry point, the way `make report` does it."""
    out = tmp_path_factory.mktemp("partial")
    (out / "results.json").write_text(json.dumps(example_results(partial=True, noisy=True)), encoding="utf-8")
    assert main([str(out)]) == 0
    return {name: (out / name).read_text(encoding="utf-8") for name in ("report.md", "report.html")}


# ---------------------------------------------------------------------------------------------- schema


def test_schema_file_is_a_valid_draft_2020_12_schema():
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("variant", [{}, {"partial": True, "noisy": True}, {"repeats": 1, "faults": False}])
def test_schema_accepts_the_example(variant):
    validate_results(example_results(**variant))


@pytest.mark.parametrize(
    ("path", "where"),
    [
        (("records",), "$"),
        (("complete",), "$"),
        (("environment", "cpu_model"), "$.environment"),
        (("parameters", "slots"), "$.parameters"),
        (("records", 0, "latency_ms", "p99"), "$.records[0].latency_ms"),
        (("records", 0, "extra", "max_rate_under_slo"), "$.records[0].extra"),
        (("faults", 0, "mechanism"), "$.faults[0]"),
    ],
)
def test_schema_rejects_a_missing_required_field(path, where):
    doc = example_results()
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    with pytest.raises(ResultsSchemaError) as info:
        validate_results(doc)
    assert f"{where}: '{path[-1]}' is a required property" in str(info.value)


def test_schema_rejects_wrong_types_and_unknown_scenarios():
    doc = example_results()
    doc["schema_version"] = 1  # an older version: one of the three problems
    doc["records"][0]["completed"] = -1
    doc["records"][1]["scenario"] = "made-up"
    with pytest.raises(ResultsSchemaError) as info:
        validate_results(doc)
    assert len(info.value.problems) == 3


def test_write_reports_refuses_an_invalid_document(tmp_path):
    doc = example_results()
    del doc["environment"]
    with pytest.raises(ResultsSchemaError):
        write_reports(doc, tmp_path)
    assert not list(tmp_path.iterdir())


def test_cli_reports_a_bad_file_and_exits_non_zero(tmp_path, capsys):
    (tmp_path / "results.json").write_text("{}", encoding="utf-8")
    assert main([str(tmp_path)]) == 1
    assert "schema_version" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- rendering


def test_writes_both_reports_with_every_section(complete_report):
    md = complete_report["report.md"]
    for heading in MD_SECTIONS:
        assert heading in md, heading
    assert "SYNTHETIC DATA" in md  # a rendered fixture can never pass for a measurement
    assert "Incomplete run" not in md


def test_html_is_self_contained_with_inline_svg(complete_report):
    html = complete_report["report.html"]
    assert html.count("<svg") >= 5
    assert not EXTERNAL.search(html), EXTERNAL.search(html)
    assert "<script" not in html and "<link" not in html and "@import" not in html
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "several inline SVGs must not share element ids"


def test_header_states_machine_versions_budget_and_threadpool(complete_report):
    md = complete_report["report.md"]
    assert "synthetic CPU, 2 cores, 8 GB RAM" in md
    assert "| celery | 5.7.0 |" in md and "| Redis server | 6.2.14 |" in md
    assert "8 task slots (WORKER_PROCESSES 2 × WORKER_THREADS 4)" in md
    assert "| Celery | 8 prefork processes x 1, prefetch multiplier 1 |" in md  # the real layout
    assert "Why the budget is equal in task slots" in md and "do not equalise memory" in md
    assert "threadpool of 40 tokens (anyio's default)" in md


def test_header_states_seed_load_generator_and_time_spent(complete_report):
    md = complete_report["report.md"]
    assert "seed 1234567" in md
    assert re.search(r"Load generator \| placement: shared: .*CPU per request over \d+ records: median", md)
    assert "| accept | 310 s |" in md and "| total | 1,164 s | 100% |" in md


def test_partial_run_gets_a_loud_banner_right_under_the_verdict(partial_report):
    for text in partial_report.values():
        banner = text.index("Incomplete run:")
        assert text.index("The answer, by kind of work") < banner < text.index("What was run")
        assert "Celery, drain (safe): 137 of 15,000 tasks not completed" in text[banner:]


def test_partial_throughput_is_never_shown_bare(partial_report):
    md = partial_report["report.md"]
    celery_row = next(
        line for line in md.splitlines() if line.startswith("| Celery |") and "[partial]" in line
    )
    assert re.search(r"\| [\d,.]+ \[partial\] \|", celery_row), celery_row
    drain = next(t for t in _texts(example_results(partial=True)) if t.startswith("drain "))
    assert "Celery [partial]" in drain


def test_completed_beyond_expected_or_duplicates_are_flagged():
    doc = example_results()
    _records(doc, "rq", "email-io")[0]["duplicated"] = 3
    banner = [f.text for f in completeness(summarize(doc))]
    assert any("RQ, email-io" in t and "3 tasks completed more than once" in t for t in banner)

    _records(doc, "rq", "email-io")[0]["completed"] += 5  # stray ledger ids: not a clean run either
    assert any("5 more completions than expected" in f.text for f in completeness(summarize(doc)))


def test_an_aborted_runner_and_the_harness_reason_reach_the_banner():
    doc = example_results()
    doc["records"] = [r for r in doc["records"] if r["runner"] != "dramatiq"]
    doc["parameters"]["runners"] = ["inprocess", "celery", "rq", "dramatiq"]
    doc["complete"] = False
    doc["warnings"].append(
        "PARTIAL RUN: dramatiq repeat 0 aborted: StackError\n  log line one\n  log line two"
    )
    banner = [f.text for f in completeness(summarize(doc))]
    assert "Dramatiq was planned but has no records at all." in banner
    assert any("PARTIAL RUN: dramatiq repeat 0 aborted: StackError log line one" in t for t in banner)


# ---------------------------------------------------------------------------------------------- findings


def test_findings_follow_the_numbers():
    doc = example_results()
    for record in _records(doc, "inprocess", "cpu-heavy"):
        record["extra"]["probe_idle_ms"]["p99"] = 2.0
        record["extra"]["probe_loaded_ms"]["p99"] = 987.0
    before = " ".join(_texts(doc))
    assert "BackgroundTasks' /health p99 2 ms (n=200) idle, p99 987 ms (n=400) under load (×494)" in before

    for record in _records(doc, "inprocess", "cpu-heavy"):
        record["extra"]["probe_loaded_ms"]["p99"] = 40.0
    after = " ".join(_texts(doc))
    assert "987 ms" not in after
    assert "p99 40 ms (n=400) under load (×20)" in after


def _drain_text(doc):
    return next(t for t in _texts(doc) if t.startswith("drain (pre-filled queue"))


def test_ranking_changes_with_the_numbers_and_respects_noise():
    doc = example_results()
    drain = _drain_text(doc)
    assert "Dramatiq" in drain and "drained/s ahead of Celery" in drain
    assert "min–max ranges apart across 3 repeats" in drain
    assert "BackgroundTasks" not in drain  # no queue to drain: their tasks run in the API

    for record in _records(doc, "dramatiq", "drain"):
        record["extra"]["drained_per_s"] = 100.0
    drain = _drain_text(doc)
    assert "Celery" in drain.split("ahead of")[0] and drain.count("(3 repeats)") == 1
    assert " > Dramatiq 100 drained/s (3 repeats)." in drain

    # Overlapping min-max ranges: no winner may be declared, and the sentence says on how many repeats.
    celery = [r["extra"]["drained_per_s"] for r in _records(doc, "celery", "drain")]
    for record, value in zip(_records(doc, "dramatiq", "drain"), celery, strict=True):
        record["extra"]["drained_per_s"] = value
    drain = _drain_text(doc)
    assert "are indistinguishable within noise (3 repeats)" in drain
    assert "ahead" not in drain.split(". ")[1]


def test_a_single_repeat_ranks_only_clear_differences():
    doc = example_results(repeats=1)
    _records(doc, "celery", "drain")[0]["extra"]["drained_per_s"] = 1000.0
    _records(doc, "dramatiq", "drain")[0]["extra"]["drained_per_s"] = 1100.0  # within 15%: no spread to judge
    drain = _drain_text(doc)
    assert "within 15% of each other on a single repeat: indistinguishable within noise (1 repeat)" in drain
    assert any(t.startswith("Only 1 repeat") for t in _texts(doc, "noisy"))


def test_noisy_figures_are_flagged():
    noisy = example_results(noisy=True)
    assert any("RQ drained/s (CV" in t for t in _texts(noisy, "noisy"))
    table = drain_table(summarize(noisy))
    rq = next(row for row in table.rows if row[0] == "RQ")
    assert "⚠" in rq[3] and "⚠" in rq[5]
    assert not _texts(example_results(), "noisy")


# ---------------------------------------------------------------------------------------------- wording


def _shape(n, p99=12.34, p999=30.0, maximum=45.0):
    return {"p50": 1.2, "p90": 5.0, "p99": p99, "p999": p999, "max": maximum, "mean": 2.0, "n": n}


def test_every_percentile_carries_its_sample_count():
    assert percentiles_text([_shape(1204)]) == "p50 1.2 ms, p99 12.3 ms, p99.9 30 ms (n=1,204)"
    assert tail([_shape(1204)]).text() == "p99 12.3 ms (n=1,204)"


def test_below_100_samples_the_max_replaces_the_p99():
    assert percentiles_text([_shape(38)]) == "p50 1.2 ms, max 45 ms (n=38)"
    assert tail([_shape(38)]).text() == "max 45 ms (n=38)"
    assert tail([_shape(38, p99=None)]).label == "max"  # the new records leave p99 null below 100
    # one weak repeat decides for all: no p99 from a set where any repeat had fewer than 100 samples
    assert tail([_shape(5000), _shape(99)]).label == "max"
    assert percentile_cell([_shape(99)], "p99") == "— (n<100)"


def test_below_1000_samples_there_is_no_p999():
    assert "p99.9" not in percentiles_text([_shape(999)])
    assert percentile_cell([_shape(999)], "p999") == "— (n<1,000)"
    assert percentile_cell([_shape(1000)], "p999") == "30"


def test_older_files_count_samples_under_count():
    old = {"p50": 1.0, "p90": 2.0, "p99": 3.0, "p999": 4.0, "max": 5.0, "mean": 1.5, "count": 150}
    assert tail([old]).text() == "p99 3 ms (n=150)"


def test_two_tails_set_side_by_side_are_the_same_percentile():
    idle, loaded = tails([_shape(200)], [_shape(33)])
    assert idle.label == loaded.label == "max"


def test_rate_words_match_what_was_measured(complete_report):
    assert rate_unit("accept") == "accepted/s" and rate_unit("drain") == "drained/s"
    assert rate_unit("steady") == rate_unit("email-io") == rate_unit("log-burst") == "completed/s"
    md = complete_report["report.md"]
    for line in md.splitlines():
        if "drained/s" in line:
            assert "drain" in line, line  # "drained" only where the drain scenario is cited
    texts = _texts(example_results())
    assert any(t.startswith("accept: ") and "accepted/s" in t for t in texts)
    assert not any("drained" in t for t in texts if not t.startswith("drain") and "(drain)" not in t)


def test_no_ratio_to_a_floor_across_paths():
    texts = _texts(example_results())
    accept = next(t for t in texts if t.startswith("accept: "))
    assert "not divided" in accept and "raw Redis" in accept
    drain = _drain_text(example_results())
    assert "share of it at the same N" in drain
    doc = example_results()
    for record in _records(doc, "raw-redis", "drain"):
        record["extra"]["n"] = 20000  # a different N: no share may be printed
    assert "share of it" not in _drain_text(doc)


def test_decomposition_is_printed_against_the_target():
    text = next(t for t in _texts(example_results()) if t.startswith("accept, API CPU per POST /log/"))
    assert re.search(
        r"Celery [\d,]+ µs: bare route 700 \+ library 660 µs \+ project [\d,]+ µs, ×[\d.]+ \(over", text
    )


def test_a_project_share_within_the_api_spread_reads_below_noise():
    doc = example_results()
    for index, record in enumerate(_records(doc, "celery", "accept")):
        parts = record["extra"]["decomposition"]
        # API 1,350-1,380 µs across repeats over bare 700 + library 660: the project's -10..+20 µs is noise.
        parts["api_us"] = (1350.0, 1380.0, 1365.0)[index % 3]
        parts["project_us"] = parts["api_us"] - parts["bare_route_us"] - parts["library_enqueue_us"]
    text = next(t for t in _texts(doc) if t.startswith("accept, API CPU per POST /log/"))
    assert re.search(r"Celery [\d,]+ µs: bare route 700 \+ library 660 µs \+ project below noise", text)
    table = decomposition_table(summarize(doc))
    assert table is not None
    celery = next(row for row in table.rows if row[0].startswith("Celery"))
    assert celery[4] == "below noise" and "–" in celery[5]


def test_drain_table_sets_each_runner_beside_its_library_and_flags_a_low_fidelity():
    table = drain_table(summarize(example_results()))
    cells = {row[0]: row[-1] for row in table.rows}
    assert re.fullmatch(
        r"CPU ×0\.[56]\d* \(0\.\d+–0\.\d+\), below ×0\.9; rate ×0\.[56]\d* \(0\.\d+–0\.\d+\)", cells["RQ"]
    )
    assert "below" not in cells["Celery"] and cells["Celery"].startswith("CPU ×")
    assert "BackgroundTasks" not in cells and any("no queue to pre-fill" in note for note in table.notes)
    assert any(note.startswith("Fidelity: in each repeat") and "same time" in note for note in table.notes)


def test_the_configuration_table_shows_what_the_job_status_writes_cost():
    table = budget_table(summarize(example_results()))
    cells = {row[0]: row[2] for row in table.rows}
    assert re.match(
        r"job-status writes, measured: with them the library's own worker drains ×0\.\d+ \(0\.\d+–0\.\d+\) "
        r"as fast as without, CPU 1,200 → 1,500 µs per task \(3 repeats\); ",
        cells["Celery"],
    )
    assert not cells["RQ"].startswith("job-status writes")


def test_a_runner_below_the_fidelity_floor_is_a_warning_naming_it():
    warnings = [t for t in _texts(example_results(), "warning") if t.startswith("drain fidelity:")]
    assert len(warnings) == 1 and "RQ below ×0.9 of its library's own minimal worker in every" in warnings[0]
    assert re.search(r"Celery ×0\.9\d* \(0\.9\d*–", warnings[0])
    assert "Known cause" not in warnings[0]
    doc = example_results()
    doc["runners"]["rq"]["project_cost"] = "each job forks a larger worker"
    cited = next(t for t in _texts(doc, "warning") if t.startswith("drain fidelity:"))
    assert cited.endswith("Known cause: RQ: each job forks a larger worker.")
    for record in _records(doc, "rq", "drain"):
        record["extra"]["fidelity"] = record["extra"]["cpu_fidelity"] = 0.95
    results = [t for t in _texts(doc, "result") if t.startswith("drain fidelity:")]
    assert len(results) == 1 and "every broker runner is at ×0.9 or more" in results[0]


def test_old_documents_still_render_with_new_sections_not_measured(tmp_path):
    # A schema-1 document (the harness before accept/drain/steady): old results must still render.
    doc = json.loads((REPO / "tests" / "data" / "results-v1.json").read_text(encoding="utf-8"))
    md = next(p for p in write_reports(doc, tmp_path) if p.name == "report.md").read_text(encoding="utf-8")
    for scenario in ("accept", "drain", "steady"):
        assert f"**{scenario}: not measured in this run.**" in md
    assert "Cost per task by component: not measured in this run." in md
    found = md[md.index("## Key findings") : md.index("## Results by scenario")]
    assert "peak RSS" in md and "drained" not in found  # log-burst was never a drain


def _incomplete_with_a_missing_runner():
    doc = example_results(partial=True)
    doc["records"] = [r for r in doc["records"] if r["runner"] != "dramatiq"]
    doc["parameters"]["runners"] = ["inprocess", "celery", "rq", "dramatiq"]
    doc["warnings"].append("PARTIAL RUN: dramatiq repeat 0 aborted")
    return doc


# Between them these documents reach every builder and every branch that emits a finding.
SOURCE_VARIANTS = {
    "partial+noisy": lambda: example_results(partial=True, noisy=True),
    "surprising": lambda: example_results(surprising=True),
    "single repeat": lambda: example_results(repeats=1),
    "missing runner": _incomplete_with_a_missing_runner,
}


@pytest.mark.parametrize("build", builders(), ids=lambda b: b.__name__)
def test_every_builder_emits_findings_that_cite_their_source(build):
    emitted = []
    for variant, make in SOURCE_VARIANTS.items():
        for f in build(summarize(make())):
            assert f.refs, f"{variant}: {f.text}"
            emitted.append(f)
    assert emitted, f"no variant reaches {build.__name__}: the source check would not cover it"


def test_every_completeness_alert_cites_its_source():
    texts = {f.text: f.refs for f in completeness(summarize(_incomplete_with_a_missing_runner()))}
    assert any("planned but has no records" in t for t in texts)
    assert any("marked this run incomplete" in t for t in texts)
    assert all(texts.values()), texts


def test_surprises_are_found():
    texts = _texts(example_results(surprising=True), "surprise")
    assert any("drained faster" in t and "raw-Redis floor" in t for t in texts)
    assert any("faster than its slot budget allows" in t for t in texts)
    assert any("lower under cpu-heavy" in t for t in texts)


def test_how_to_choose_cites_figures_or_says_not_measured():
    doc = example_results(faults=False)
    rows = {row.need: row for row in how_to_choose(summarize(doc))}
    assert all(cell == "not measured in this run" for cell in rows["must survive a crash / deploy"].cells)
    light = rows["take light tasks at a high request rate"]
    assert all(re.search(r"\d accepted/s", cell) for cell in light.cells)
    assert "Dramatiq" in light.verdict and "3 repeats" in light.verdict
    backlog = rows["work off a backlog"].cells
    assert backlog[0] == "n/a: tasks run in the API, no queue to pre-fill" and backlog[1].endswith(
        "drained/s"
    )
    assert rows["latency at a steady load"].verdict.startswith("not ranked")


def test_fixture_is_not_mutated_between_calls():
    first = example_results()
    second = copy.deepcopy(first)
    summarize(first)
    findings(summarize(first))
    assert first == second == example_results()


def test_a_floors_configuration_cell_says_what_the_floor_is():
    from fbt_bench.profiles import QUICK
    from fbt_bench.report.tables import _describe
    from fbt_bench.scenarios.baselines import DESCRIPTIONS, floor_facts

    for name in DESCRIPTIONS:
        cell = _describe(floor_facts(name, QUICK))
        assert cell.startswith("floor, not a runner: ") and DESCRIPTIONS[name]["description"] in cell


def test_peers_published_drains_are_set_beside_this_runs_order_never_as_ratios():
    from fbt_bench.report import peers
    from fbt_bench.report.analysis import summarize

    assert peers._agreement(["a", "b"], ["a", "b"], {"a": 2.0, "b": 1.0}) == "yes"
    assert peers._agreement(["a", "b"], ["b", "a"], {"a": 1.0, "b": 1.05}).startswith("no, but only within")
    assert peers._agreement(["a", "b"], ["b", "a"], {"a": 1.0, "b": 3.0}) == "no"
    sample = json.loads((Path(__file__).parent.parent / "docs/sample-report/results.json").read_text())
    table = peers.peers_table(summarize(sample))
    assert table is not None and all(len(row) == len(table.columns) for row in table.rows)
    assert all("×" not in cell for row in table.rows for cell in row)


def test_the_load_generator_is_judged_by_its_share_of_a_core_and_its_cost_per_request():
    doc = example_results()
    doc["environment"]["wakeup_cpu_us"] = {"median": 55.0, "n": 60, "period_ms": 10.0}
    http = [r for r in doc["records"] if r["loadgen_cpu_us_per_request"] is not None]
    for record in http:
        record["loadgen_core_share"] = 0.05
    http[0]["loadgen_cpu_us_per_request"] = 420.0
    texts = _texts(doc)
    assert any("at most 5% of a core" in t and "not the bottleneck" in t for t in _texts(doc, "result"))
    cost = next(t for t in _texts(doc, "surprise") if t.startswith("Per request the load generator"))
    assert "420 µs" in cost and "above it" in cost and "55 µs" in cost and "n 60" in cost
    http[1]["loadgen_core_share"] = 0.4
    assert any("at most 40% of a core" in t and "over budget" in t for t in _texts(doc, "alert"))
    assert texts != _texts(doc)


def test_a_steady_window_that_fell_behind_is_a_surprise():
    doc = example_results()
    assert not any("fell behind" in t for t in _texts(doc, "surprise"))
    steady = [r for r in doc["records"] if r["scenario"] == "steady"]
    assert steady, "the fixture has steady records"
    victim = steady[0]
    victim["extra"]["arrival_rate"] = victim["throughput_per_s"] * 2  # completed half of what arrived
    # ...but answered within a short latency: the last jobs finished after the window, no backlog grew.
    victim["latency_ms"]["p50"] = 1.0
    victim["extra"].update(warmup_s=1.0, window_s=4.0)
    assert not any("fell behind" in t for t in _texts(doc, "surprise"))
    victim["latency_ms"]["p50"] = 3_000.0  # most of the window: a backlog
    texts = [t for t in _texts(doc, "surprise") if "fell behind" in t]
    assert texts and "50%" in texts[0], texts
