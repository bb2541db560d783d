"""The verdict (the report's first screen) and the tiers every ranking uses, on fixture records."""

import json
import re
from pathlib import Path

from bench_fixtures import example_results

from fbt_bench.measuring.stats import Spread
from fbt_bench.report.analysis import summarize
from fbt_bench.report.phrasing import Finding
from fbt_bench.report.render import KEY_FINDING_CHARS, KEY_FINDINGS, key, write_reports
from fbt_bench.report.tiers import tiers
from fbt_bench.report.verdict import NOT_MEASURED, sustainable, verdict
from fbt_bench.schema import validate_results


def spread(low: float, high: float) -> Spread:
    found = Spread.of([low, (low + high) / 2, high])
    assert found is not None
    return found


def test_tiers_group_overlapping_ranges_with_the_best_and_never_chain_across_a_gap() -> None:
    figures = {"a": spread(90, 100), "b": spread(85, 95), "c": spread(80, 88), "d": spread(40, 50)}
    grouped = tiers(list(figures), figures.__getitem__, higher_is_better=True)
    # c overlaps b but not a: it starts the next tier instead of joining a's by a chain of ties.
    assert grouped == [["a", "b"], ["c"], ["d"]]
    assert tiers(list(figures), figures.__getitem__, higher_is_better=False)[0] == ["d"]
    assert tiers([], figures.__getitem__, higher_is_better=True) == []


def test_sustainable_capacity_is_the_lower_of_accept_and_drain_in_each_repeat() -> None:
    doc = example_results()
    summary = summarize(doc)
    for runner, config in summary.systems:
        found = sustainable(summary, runner, config)
        assert found is not None and found.n == 3
        accept = summary.get("accept", runner, config)
        assert accept is not None
        accepted = accept.spread(lambda r: r["extra"]["max_rate_under_slo"])
        assert accepted is not None and found.high <= accepted.high
        if not summary.runs_in_api(runner):
            drain = summary.get("drain", runner, config)
            assert drain is not None
            drained = drain.spread(lambda r: r["extra"]["drained_per_s"])
            assert drained is not None and found.high <= drained.high


def test_every_row_answers_with_figures_and_n_or_says_it_was_not_measured() -> None:
    rows = verdict(summarize(example_results()))
    assert [row.work for row in rows] == [
        "Light fire-and-forget tasks at a high rate",
        "I/O-bound tasks (email)",
        "CPU-heavy tasks next to a live API",
        "A burst larger than capacity",
        "Work that must survive a crash, a deploy or a network cut",
        "A small operational footprint",
    ]
    for row in rows:
        if row.background_tasks == NOT_MEASURED:
            assert row.best == NOT_MEASURED or row.work.startswith("Work"), row
            continue
        assert re.search(r"\d", row.deciding), row
        assert re.search(r"\(\d+ repeats?\)|n=[\d,]+|trial", row.deciding), row
        assert row.ref


def test_a_run_without_faults_or_email_says_so_in_those_rows() -> None:
    doc = example_results(faults=False)
    doc["records"] = [r for r in doc["records"] if r["scenario"] != "email-io"]
    rows = {row.work: row for row in verdict(summarize(doc))}
    for work in ("I/O-bound tasks (email)", "Work that must survive a crash, a deploy or a network cut"):
        assert rows[work].background_tasks == rows[work].best == rows[work].deciding == NOT_MEASURED
        assert rows[work].ref == ""


def test_key_findings_are_few_short_and_alerts_come_first() -> None:
    found = [Finding("result", "r" * 50, None, ()) for _ in range(20)]
    found += [Finding("alert", "a" * 80, None, ()), Finding("alert", "x" * (KEY_FINDING_CHARS + 1), None, ())]
    chosen = key(found)
    assert len(chosen) == KEY_FINDINGS and chosen[0].kind == "alert"
    assert all(len(f.text) <= KEY_FINDING_CHARS for f in chosen)


def test_the_rendered_report_leads_with_the_verdict_and_keeps_parameters_out(tmp_path: Path) -> None:
    md = next(p for p in write_reports(example_results(), tmp_path) if p.name == "report.md").read_text()
    assert (
        md.index("## The answer, by kind of work") < md.index("## Key findings") < md.index("## What was run")
    )
    findings = md[md.index("## Key findings") : md.index("## What was run")]
    bullets = [line for line in findings.splitlines() if line.startswith("- ")]
    assert 0 < len(bullets) <= KEY_FINDINGS
    assert '"accept_start_rate"' not in md  # the parameters live in results.json only
    assert "≈" not in md


def test_the_cpu_row_comes_from_the_sweep_where_the_run_has_one(tmp_path: Path) -> None:
    doc = example_results(sweep=True)
    rows = {row.work: row for row in verdict(summarize(doc))}
    row = rows["CPU-heavy tasks next to a live API"]
    assert row.ref == "tab-cpu-sweep" and "resizes/s" in row.background_tasks
    assert "API alone on a core" in row.background_tasks and "probes" in row.deciding
    md = next(p for p in write_reports(doc, tmp_path) if p.name == "report.md").read_text()
    assert "cpu-sweep: resizes per second before GET /health p99 breaks the SLO" in md


def test_a_run_without_the_sweep_says_which_profile_runs_it(tmp_path: Path) -> None:
    md = next(p for p in write_reports(example_results(), tmp_path) if p.name == "report.md").read_text()
    assert "**cpu-sweep: not measured in this run.**" in md and "Run by the default and full profiles" in md


def test_the_burst_row_says_where_the_backlog_waited_and_how_long_it_took(tmp_path: Path) -> None:
    doc = example_results(burst=True)
    row = {row.work: row for row in verdict(summarize(doc))}["A burst larger than capacity"]
    assert (
        row.background_tasks.startswith("only if losing them is acceptable")
        and "API's memory" in row.background_tasks
    )
    assert row.ref == "tab-burst" and "recovery after" in row.deciding and "repeats" in row.deciding
    md = next(p for p in write_reports(doc, tmp_path) if p.name == "report.md").read_text()
    assert "burst: where the backlog lives" in md


def test_a_burst_record_carries_the_fault_passs_kill_and_deploy_of_its_own_system(tmp_path: Path) -> None:
    from fbt_bench.scenarios.burst import attach_crash_outcomes

    doc = example_results(burst=True)
    bursts = [r for r in doc["records"] if r["scenario"] == "burst"]
    runner = bursts[0]["runner"]
    cell = {"runner": runner, "broker": bursts[0].get("broker"), "config": bursts[0]["config"]}
    faults = [
        {
            **cell,
            "fault": "kill-worker",
            "expected": 30,
            "lost": 3,
            "held": 2,
            "reexecuted": 0,
            "duplicate_effects": 0,
            "in_flight_at_fault": 5,
            "watch_covers_bound": False,
        },
        # Another broker's cell, and the defaults config's: never this record's.
        {**cell, "broker": "elsewhere", "fault": "deploy", "expected": 30, "lost": 9, "held": 0},
        {**cell, "config": "defaults", "fault": "kill-worker", "expected": 30, "lost": 9, "held": 0},
    ]
    attach_crash_outcomes(doc["records"], faults)
    mine = next(r for r in bursts if r["runner"] == runner)
    assert mine["extra"]["kill"] == {
        "expected": 30,
        "lost": 3,
        "held": 2,
        "reexecuted": 0,
        "duplicate_effects": 0,
        "in_flight_at_fault": 5,
        "trials": 1,
        "watch_covers_bound": False,
    }
    assert mine["extra"]["deploy"] is None
    others = [r for r in bursts if r["runner"] != runner]
    assert others and all(r["extra"]["kill"] is None for r in others)
    validate_results(doc)
    md = next(p for p in write_reports(doc, tmp_path) if p.name == "report.md").read_text()
    assert "SIGKILL: 3 lost, 2 held of 30; SIGTERM: not measured" in md


def test_a_backlog_is_split_between_the_broker_and_the_api() -> None:
    from fbt_bench.scenarios.burst import backlog_where

    assert backlog_where(100, 40, 60) == {"backlog": 60, "in_broker": 60, "in_api": 0}
    assert backlog_where(100, 40, 0) == {"backlog": 60, "in_broker": 0, "in_api": 60}
    # RabbitMQ counts per queue, not per id: never more in the broker than the backlog itself.
    assert backlog_where(100, 90, 25) == {"backlog": 10, "in_broker": 10, "in_api": 0}


def _visible(html: str) -> str:
    """The body before the appendix, with every folded (<details>) part taken out, as a reader first sees it."""
    body = html[: html.index('id="appendix"')]
    folded = None
    while folded != body:
        folded = body
        body = re.sub(r"<details[^>]*>(?:(?!<details).)*?</details>", "", body, flags=re.S)
    return body


def test_the_report_stays_short_enough_to_read_in_ten_minutes(tmp_path: Path) -> None:
    """The report's length limits on a full fixture run (the full profile's scenarios and faults included):
    at most 12 short key findings, a handful of tables and one chart per section before the appendix, and
    about 20,000 characters of prose; the rest is folded."""
    doc = example_results(sweep=True, burst=True)
    html = next(p for p in write_reports(doc, tmp_path) if p.name == "report.html").read_text()
    body = _visible(html)
    prose = re.sub(r"<[^>]+>", "", re.sub(r"<svg.*?</svg>", "", body, flags=re.S))
    assert body.count("<table") <= 6 and body.count("<svg") <= 9
    assert len(prose) <= 20_000, len(prose)
    findings = body[body.index('id="findings"') : body.index('id="what-was-run"')]
    assert findings.count("<li") <= KEY_FINDINGS


def test_a_scenario_the_profile_measures_once_is_not_missing_repeats() -> None:
    from fbt_bench.report.findings import completeness

    doc = example_results(sweep=True, burst=True)
    doc["records"] = [
        r for r in doc["records"] if r["scenario"] not in ("cpu-sweep", "burst") or r["repeat"] == 0
    ]
    missing = [f.text for f in completeness(summarize(doc)) if "repeats recorded" in f.text]
    assert any("cpu-sweep" in text for text in missing)  # planned for every repeat: 2 are missing
    doc["parameters"]["once"] = ["cpu-sweep", "burst"]
    assert [f.text for f in completeness(summarize(doc)) if "repeats recorded" in f.text] == []
    # A runner on another broker measures them nowhere by design; a scenario every repeat runs is still owed.
    other = [
        {**r, "broker": "rabbitmq"}
        for r in doc["records"]
        if r["runner"] == "celery" and r["scenario"] == "accept"
    ]
    doc["records"] += other
    alerts = [f.text for f in completeness(summarize(doc)) if "has no" in f.text]
    assert other and alerts and not [t for t in alerts if "cpu-sweep" in t or "burst" in t]


def test_a_sweeps_placements_are_conditions_not_repeats() -> None:
    from fbt_bench.results import conditions

    shared, split = ({"scenario": "cpu-sweep", "extra": {"placement": p}} for p in ("shared", "split"))
    assert conditions(shared) != conditions(split)
    assert conditions({"scenario": "accept", "extra": {"placement": "shared"}}) == ()


def test_a_faults_run_replaces_the_short_pass_in_the_crash_row_and_the_burst_table(tmp_path: Path) -> None:
    from fbt_bench.report.fold_faults import fold_faults
    from fbt_bench.report.render import main

    doc = example_results(burst=True)
    burst = next(r for r in doc["records"] if r["scenario"] == "burst")
    cell = {"runner": burst["runner"], "broker": burst.get("broker"), "config": burst["config"]}
    trials = [
        {
            **cell,
            "fault": "kill-worker",
            "trial": t,
            "expected": 60,
            "lost": 0,
            "held": 0,
            "reexecuted": 8,
            "duplicate_effects": 0,
            "in_flight_at_fault": 8,
            "watch_covers_bound": True,
        }
        for t in (1, 2, 3)
    ]
    faults_run = {
        "profile": "faults",
        "created_at": "2026-12-07T14:15:52Z",
        "parameters": {"faults": {"n": 60}},
        "faults": trials,
    }
    folded = fold_faults(doc, faults_run, tmp_path / "faults.json")
    assert folded["parameters"]["faults_source"]["created_at"] == "2026-12-07T14:15:52Z"
    mine = next(r for r in folded["records"] if r["scenario"] == "burst" and r["runner"] == cell["runner"])
    assert mine["extra"]["kill"]["trials"] == 3 and mine["extra"]["kill"]["expected"] == 180
    row = {row.work: row for row in verdict(summarize(folded))}[
        "Work that must survive a crash, a deploy or a network cut"
    ]
    assert "up to 3 trial(s) per cell" in row.deciding
    # A compare run is not a faults run: refused with the reason, nothing rewritten.
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text(json.dumps(doc))
    assert main([str(tmp_path / "run"), "--faults", str(tmp_path / "run")]) == 1
