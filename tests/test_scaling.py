"""The slot sweep (PROFILE=scaling): the split rule, the profile and plan, the records' slot fields, the report
section built from them; and one tiny sweep end to end (slow). Asserts shapes and what the numbers say, never
a speed."""

import copy
from pathlib import Path
from typing import Any

import pytest
from bench_fixtures import example_results
from test_bench_e2e import TINY
from typer.testing import CliRunner

from fbt_bench import scaling
from fbt_bench.cli import app, summary_table
from fbt_bench.harness import Plan, publish, run
from fbt_bench.profiles import DEFAULT, PROFILES, SCALING
from fbt_bench.report import scaling as section
from fbt_bench.report import write_reports
from fbt_bench.report.analysis import PARTIAL_MARK, summarize
from fbt_bench.scenarios.draining import Ready, draining
from fbt_bench.schema import validate_results
from fbt_devstack.processes import descendants_of_self

SLOTS = (1, 2, 4, 8, 16, 32)
CORES = 2


# ---------------------------------------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    ("slots", "cores", "split"),
    [
        (1, 2, (1, 1)),
        (2, 2, (2, 1)),
        (32, 2, (2, 16)),
        (8, 4, (4, 2)),
        (8, 3, (2, 4)),
        (6, 4, (3, 2)),
        (5, 2, (1, 5)),
    ],
)
def test_split_uses_the_cores_and_divides_the_slots(slots: int, cores: int, split: tuple[int, int]) -> None:
    assert scaling.split(slots, cores) == split
    processes, threads = split
    assert processes * threads == slots and processes <= cores


def test_split_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        scaling.split(0, 2)


def test_stack_cores_follow_the_placement() -> None:
    assert scaling.stack_cores({"pinned": False, "cpus": [0, 1]}) == 2
    assert scaling.stack_cores({"pinned": True, "stack_cpus": [0, 1, 2], "loadgen_cpus": [3]}) == 3
    assert scaling.stack_cores({}) == 1


def test_scaling_profile_is_the_issue_sweep() -> None:
    assert PROFILES["scaling"] is SCALING
    assert SCALING.slot_sweep == SLOTS
    assert set(SCALING.scenarios) == {"drain", "email-io"}
    assert SCALING.repeats == 1 and not SCALING.fault_pass and not SCALING.floors_apply
    assert SCALING.default_brokers == ("redis",)
    # The default profile is untouched: no sweep, its floors and fault pass kept.
    assert DEFAULT.slot_sweep == () and DEFAULT.floors_apply and DEFAULT.fault_pass
    assert SCALING.parameters()["slot_sweep"] == list(SLOTS)


def test_each_point_gets_its_split_and_emails_per_slot() -> None:
    assert scaling.sweep(SCALING) == SLOTS
    assert scaling.sweep(DEFAULT) == (None,)
    for slots in SLOTS:
        at = scaling.profile_at(SCALING, slots, CORES)
        assert at.slots == slots
        assert (at.worker_processes, at.worker_threads) == scaling.split(slots, CORES)
        assert at.email_n == slots * SCALING.email_per_slot
    plan = Plan(profile=SCALING, runners=("rq",))
    assert scaling.plan_at(plan, None, CORES) is plan
    assert scaling.plan_at(plan, 16, CORES).profile.slots == 16
    recorded = scaling.parameters(SCALING, CORES)
    assert recorded["cores"] == CORES and recorded["layouts"]["32"] == [2, 16]


def test_cli_lists_the_optional_profiles() -> None:
    result = CliRunner().invoke(app, ["compare", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "scaling" in result.output and "network" in result.output


def _usage(pss: float, processes: int) -> dict[str, Any]:
    return {"cpu_s": 0.5, "peak_pss_mb": pss, "peak_rss_mb": pss * 1.5, "processes": processes}


def test_annotate_records_slots_layout_and_memory_of_the_group_holding_the_slots() -> None:
    at = scaling.profile_at(SCALING, 8, CORES)
    in_workers = {"resources": {"api": _usage(60.0, 1), "workers": _usage(200.0, 8)}}
    in_api = {"resources": {"api": _usage(80.0, 1), "workers": _usage(0.0, 0)}}
    unmeasured = {"resources": {"api": _usage(0.0, 0), "workers": _usage(0.0, 0)}}
    scaling.annotate([in_workers, in_api, unmeasured], at, "8 prefork processes")
    assert in_workers["slots"] == 8
    assert in_workers["slot_layout"] == {"processes": 2, "threads": 4, "described": "8 prefork processes"}
    assert in_workers["slot_memory"] == {"group": "workers", "peak_pss_mb": 200.0, "per_slot_mb": 25.0}
    assert in_api["slot_memory"] == {"group": "api", "peak_pss_mb": 80.0, "per_slot_mb": 10.0}
    assert "slot_memory" not in unmeasured


def test_draining_leaves_the_workers_start_out() -> None:
    at_first = {"workers": _usage(100.0, 2), "api": _usage(60.0, 1)}
    at_end = {"workers": {**_usage(100.0, 2), "cpu_s": 2.5}, "api": {**_usage(60.0, 1), "cpu_s": 0.7}}
    window = draining(Ready(10, 5.0, at_first), 7.0, at_end, completed=110)
    assert window is not None and window.tasks == 100
    found = window.as_record()
    assert found["after_completed"] == 10 and found["seconds"] == 2.0 and found["cpu_s"] == pytest.approx(2.2)
    # 2.0 s of workers' CPU and 0.2 s of the API's over the 100 tasks completed after the workers were ready.
    assert found["cpu_us_per_task"]["workers"] == 20_000.0 and found["cpu_us_per_task"]["api"] == 2_000.0
    assert draining(Ready(110, 5.0, at_first), 7.0, at_end, completed=110) is None


def test_cli_summary_keeps_the_sweep_points_apart_in_slot_order() -> None:
    table = summary_table(_sweep_document())
    runners = list(table.columns[1].cells)
    celery = [name for name in runners if name.startswith("celery")]
    assert celery[: len(SLOTS)] == [f"celery @{slots} slots" for slots in SLOTS]


# ---------------------------------------------------------------------------------------------- the report


def _sweep_document() -> dict[str, Any]:
    """The synthetic document's runners at every slot count: Celery's workers keep the ideal of both
    scenarios up to 32 slots and grow 20 MB per slot; RQ's email-io flattens at 4 slots with its cores
    saturated and its drain stops growing at 1 slot; BackgroundTasks holds its slots in the API."""
    doc = example_results(repeats=1, faults=False)
    base = {(r["runner"], r["scenario"]): r for r in doc["records"] if r["scenario"] in ("drain", "email-io")}
    delay_s = doc["parameters"]["smtp_delay_ms"] / 1000
    records = []
    for runner in ("celery", "rq", "inprocess"):
        for slots in SLOTS:
            processes, threads = scaling.split(slots, CORES)
            for scenario in ("email-io", "drain"):
                record = copy.deepcopy(base[(runner, scenario)])
                ideal = slots / delay_s
                if scenario == "email-io":
                    rate = ideal * 0.97 if runner != "rq" else min(ideal, 4 / delay_s)
                    record["extra"].update(ideal_throughput_per_s=ideal, efficiency=round(rate / ideal, 3))
                else:
                    rate = 300.0 * min(slots, CORES) if runner != "rq" else 300.0
                    record["extra"]["draining"] = {
                        "after_completed": 10,
                        "seconds": 0.5,
                        "cpu_s": 0.95,
                        "cpu_us_per_task": {"api": None, "broker": 100.0, "workers": 900.0, "total": 1000.0},
                    }
                record["throughput_per_s"] = round(rate, 2)
                record["duration_s"] = 1.0
                record["resources"]["workers"] = _usage(
                    50.0 + 20.0 * slots, processes if runner != "inprocess" else 0
                )
                record["resources"]["api"] = _usage(60.0 + 0.5 * slots, 1)
                # Every sampled process together: RQ's cores saturate from 4 slots on.
                busy = 1.9 if runner == "rq" and slots >= 4 else 0.6
                for usage in record["resources"].values():
                    usage["cpu_s"] = busy / len(record["resources"])
                scaling.annotate(
                    [record], scaling.profile_at(SCALING, slots, CORES), f"{processes} x {threads}"
                )
                records.append(record)
    doc["records"] = records
    doc["profile"] = "scaling"
    doc["parameters"]["slot_sweep"] = list(SLOTS)
    doc["parameters"]["scaling"] = scaling.parameters(SCALING, CORES)
    return doc


def test_sweep_document_validates() -> None:
    validate_results(_sweep_document())


def test_scenario_sections_show_only_the_budget() -> None:
    doc = _sweep_document()
    kept = section.at_budget(doc)["records"]
    assert kept and {r["slots"] for r in kept} == {doc["parameters"]["slots"]}
    # One repeat set per kept record, but for a drain of tasks run in the API: no queue, not compared.
    compared = [r for r in kept if not (r["scenario"] == "drain" and r["runner"] == "inprocess")]
    assert len(summarize(section.at_budget(doc)).repeat_sets) == len(compared)
    plain = example_results(repeats=1, faults=False)
    assert section.at_budget(plain) is plain


def test_tables_say_where_each_runner_leaves_the_ideal() -> None:
    doc = _sweep_document()
    table = section.slots_table(doc)
    assert table is not None and len(table.rows) == 3 * len(SLOTS)
    # drain's CPU per task and busy cores come from its draining window (the workers' start left out).
    first = table.rows[0]
    assert first[0] == "Celery" and first[4].endswith("/ 1,000") and first[5].endswith("/ 1.9")
    summary = section.summary_table(doc)
    assert summary is not None
    rows = {row[0]: row for row in summary.rows}
    celery, rq = rows["Celery"], rows["RQ"]
    assert celery[1].startswith("stays above 80% up to 32") and celery[2].startswith(
        "stays above 80% up to 32"
    )
    assert rq[1].startswith("8 slots") and rq[2].startswith("2 slots")
    assert celery[3].startswith("20") and "(workers)" in celery[3]
    # BackgroundTasks' email-io slots are held in the API: its memory is the API's.
    assert "(api)" in rows["BackgroundTasks"][3]


def test_findings_come_from_the_numbers() -> None:
    lines = section.findings(_sweep_document())
    rq = [line for line in lines if line.startswith("RQ: email-io")]
    assert len(rq) == 1 and "at 8 slots" in rq[0] and "the cores were the limit" in rq[0] and "n=1" in rq[0]
    assert any(line.startswith("Celery: drain stays above 80%") for line in lines)
    memory = [line for line in lines if line.startswith("Peak PSS per added slot")]
    assert len(memory) == 1 and memory[0].index("BackgroundTasks") < memory[0].index("Celery")


def test_a_point_below_the_ideal_from_the_start_and_partial_says_so() -> None:
    doc = _sweep_document()
    first = next(r for r in doc["records"] if r["runner"] == "inprocess" and r["scenario"] == "email-io")
    assert first["slots"] == 1
    first["throughput_per_s"] = first["extra"]["ideal_throughput_per_s"] / 2
    first["completed"], first["missing"] = first["expected"] - 1, 1
    line = next(x for x in section.findings(doc) if x.startswith("BackgroundTasks: email-io"))
    assert "is below 80% of its ideal at 1 slot " in line and PARTIAL_MARK in line
    table = section.slots_table(doc)
    assert table is not None
    assert PARTIAL_MARK in next(row for row in table.rows if row[0] == "BackgroundTasks")[2]


def test_chart_and_reports_have_the_section(tmp_path: Path) -> None:
    doc = _sweep_document()
    chart = section.slots_chart(doc)
    assert chart is not None and chart.svg.startswith("<svg") and "ideal" in chart.svg
    md, html = (p.read_text(encoding="utf-8") for p in write_reports(doc, tmp_path))
    assert "## Scaling with slots" in md and 'id="scaling"' in html
    assert section.TABLE_ID in md and section.CHART_ID in html


def test_other_runs_have_no_section_but_name_the_optional_profiles(tmp_path: Path) -> None:
    doc = example_results(repeats=1, faults=False)
    assert (
        section.slots_table(doc) is None and section.slots_chart(doc) is None and section.findings(doc) == []
    )
    md, _ = (p.read_text(encoding="utf-8") for p in write_reports(doc, tmp_path))
    assert "## Scaling with slots" not in md
    assert "PROFILE=scaling" in md and "PROFILE=network" in md


# ---------------------------------------------------------------------------------------------- end to end

SCALING_TINY = TINY.with_overrides(
    name="scaling-tiny", slot_sweep=(1, 2), scenarios=("drain", "email-io"), drain_n=30, email_per_slot=3
)


@pytest.mark.e2e
@pytest.mark.bench
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_one_runner_sweeps_two_slot_counts_and_leaves_nothing(tmp_path: Path) -> None:
    before = {proc.pid for proc in descendants_of_self()}
    plan = Plan(
        profile=SCALING_TINY,
        runners=("rq",),
        scenarios=("drain", "email-io"),
        baselines=(),
        out_root=tmp_path,
        command="pytest tests/test_scaling.py",
        fault_pass=False,
        brokers=("redis",),
    )
    outcome = run(plan)
    reports, problems = publish(outcome)
    assert outcome.failures == [] and problems == []
    records = outcome.document["records"]
    assert sorted((r["scenario"], r["slots"]) for r in records) == [
        ("drain", 1),
        ("drain", 2),
        ("email-io", 1),
        ("email-io", 2),
    ]
    for record in records:
        assert record["completed"] == record["expected"]
        layout = record["slot_layout"]
        assert layout["processes"] * layout["threads"] == record["slots"] and layout["described"]
        assert record["slot_memory"]["per_slot_mb"] > 0
        if record["scenario"] == "drain":
            assert "draining" in record["extra"]  # null only when the first look saw every task done
    emails = {r["slots"]: r["expected"] for r in records if r["scenario"] == "email-io"}
    assert emails == {1: 3, 2: 6}
    assert outcome.document["parameters"]["scaling"]["cores"] >= 1
    assert "## Scaling with slots" in next(p for p in reports if p.suffix == ".md").read_text(
        encoding="utf-8"
    )
    assert [p for p in descendants_of_self() if p.pid not in before] == []
