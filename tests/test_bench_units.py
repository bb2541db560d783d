"""Unit tests of the harness engine: percentiles, ledger counting, the open-loop scheduler, results.

Nothing here asserts how fast anything ran: latencies are checked only against lower bounds the code
guarantees by construction (a request that waited for a stalled server must show at least that wait).
"""

import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fbt_bench.harness import placement, runner_orders, scenario_orders
from fbt_bench.measuring import loadgen, stats
from fbt_bench.measuring.ledger_reader import LedgerFollower, LedgerTally
from fbt_bench.measuring.sampler import ProcSet, ProcUsage, ResourceSampler
from fbt_bench.measuring.stats import new_histogram
from fbt_bench.profiles import DEFAULT, PROFILES, QUICK, SCENARIOS
from fbt_bench.results import finalize, new_document, write_results
from fbt_bench.scenarios import accept as accept_scenario
from fbt_bench.scenarios.accept import decomposition_record
from fbt_bench.scenarios.draining import Draining
from fbt_bench.scenarios.mixed import MIX
from fbt_bench.scenarios.mixed import routes as mixed_routes
from fbt_bench.scenarios.record import Measured, cpu_us_per_task, make_record
from fbt_bench.scenarios.reference import fidelity
from fbt_bench.scenarios.reference import summarize as summarize_reference
from fbt_bench.schema import validate_results
from fbt_bench.topology import external_urls
from fbt_tasks.ledger import CompletionEvent, record
from fbt_tasks.reference import Reference

# HdrHistogram with 3 significant figures: a reported value is within 0.1% of the sample it stands for.
HDR_RELATIVE_ERROR = 0.002


# -- stats -----------------------------------------------------------------------------------------------


def nearest_rank(sorted_values: list[float], percentile: float) -> float:
    """The sample HdrHistogram's percentile definition points at (rank rounded half up, at least 1)."""
    rank = max(int(percentile * len(sorted_values) / 100 + 0.5), 1)
    return sorted_values[rank - 1]


def test_summary_of_a_uniform_distribution() -> None:
    values = [float(ms) for ms in range(1, 1001)]  # 1..1000 ms, once each
    summary = stats.summarize_ms(values)
    assert summary["count"] == 1000
    for key, expected in (("p50", 500), ("p90", 900), ("p99", 990), ("p999", 999), ("max", 1000)):
        assert summary[key] == pytest.approx(expected, rel=HDR_RELATIVE_ERROR), key
    assert summary["mean"] == pytest.approx(500.5, rel=HDR_RELATIVE_ERROR)


def test_summary_of_a_bimodal_distribution_reports_the_tail() -> None:
    values = [1.0] * 980 + [200.0] * 20  # 2% slow: p50 and p90 fast, p99 slow
    summary = stats.summarize_ms(values)
    assert summary["p50"] == pytest.approx(1.0, rel=HDR_RELATIVE_ERROR)
    assert summary["p90"] == pytest.approx(1.0, rel=HDR_RELATIVE_ERROR)
    assert summary["p99"] == pytest.approx(200.0, rel=HDR_RELATIVE_ERROR)


def test_empty_summary_is_all_zero() -> None:
    assert stats.summarize_ms([]) == {
        "p50": 0.0,
        "p90": 0.0,
        "p99": 0.0,
        "p999": 0.0,
        "max": 0.0,
        "mean": 0.0,
        "n": 0,
        "count": 0,
    }
    assert stats.cdf(stats.new_histogram()) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=50_000_000), min_size=1, max_size=400))
def test_percentiles_match_exact_ranks_within_hdr_precision(values_us: list[int]) -> None:
    values_ms = [us / 1000 for us in values_us]
    summary = stats.summarize_ms(values_ms)
    ordered = sorted(values_ms)
    assert summary["count"] == len(values_ms)
    for key, percentile in (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9)):
        exact = nearest_rank(ordered, percentile)
        assert summary[key] == pytest.approx(exact, rel=HDR_RELATIVE_ERROR, abs=0.001), key
    assert summary["max"] == pytest.approx(ordered[-1], rel=HDR_RELATIVE_ERROR, abs=0.001)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=10_000, allow_nan=False), min_size=1, max_size=2000))
def test_cdf_is_monotonic_bounded_and_ends_at_one(values_ms: list[float]) -> None:
    points = stats.cdf(stats.histogram_of(values_ms))
    assert 1 <= len(points) <= stats.MAX_CDF_POINTS
    assert points[-1][1] == 1.0
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in itertools.pairwise(points))


def test_downsample_keeps_the_ends_and_the_limit() -> None:
    points = [[float(i), i / 999] for i in range(1000)]
    kept = stats.downsample(points, 200)
    assert len(kept) <= 200
    assert kept[0] == points[0] and kept[-1] == points[-1]
    assert stats.downsample(points[:5], 200) == points[:5]


def test_spread_flags_noisy_repeats() -> None:
    steady = stats.spread([100.0, 100.0, 100.0])
    assert steady == {"median": 100.0, "min": 100.0, "max": 100.0, "cv": 0.0, "noisy": False}
    noisy = stats.spread([50.0, 100.0, 150.0])
    assert noisy["median"] == 100.0
    assert noisy["cv"] == pytest.approx(0.5, abs=1e-3)  # sample standard deviation (n - 1): 50 / 100
    assert noisy["noisy"] is True
    assert stats.spread([100.0, 110.0])["noisy"] is False  # CV 6.7%


# -- ledger reading ----------------------------------------------------------------------------------------


def event(
    job_id: str, ok: bool, enqueued: float = 100.0, finished: float = 100.5, attempt: int = 1
) -> CompletionEvent:
    return CompletionEvent(
        id=job_id,
        kind="write_log",
        enqueued_at=enqueued,
        started_at=enqueued,
        finished_at=finished,
        pid=1,
        attempt=attempt,
        ok=ok,
        error=None if ok else "boom",
    )


def read_tally(path: Path, job_ids: list[str], expected: int | None = None) -> LedgerTally:
    """One-shot count of a finished ledger."""
    follower = LedgerFollower(path)
    follower.expect(job_ids)
    follower.poll()
    return follower.tally(expected)


def test_tally_counts_completed_duplicated_failed_and_missing(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    record(ledger, event("a", True, finished=100.010))
    record(ledger, event("b", True, finished=100.020))
    record(ledger, event("b", True, finished=100.500, attempt=2))  # redelivered: the effect ran twice
    record(ledger, event("c", False))
    record(ledger, event("c", True, finished=100.030, attempt=2))  # retried successfully: not failed
    record(ledger, event("d", False))  # failed and never succeeded
    record(ledger, event("zz", True))  # another scenario's job: ignored
    with open(ledger, "a", encoding="utf-8") as fh:
        fh.write('{"id": "e", "kind": "wri')  # a writer mid-append: not counted
    tally = read_tally(ledger, ["a", "b", "c", "d", "e"])
    assert (tally.expected, tally.completed, tally.duplicated, tally.failed, tally.missing) == (5, 3, 1, 1, 2)
    assert not tally.done
    # Latency comes from each id's first successful attempt: 10, 20 and 30 ms.
    summary = stats.summarize(tally.latency)
    assert summary["count"] == 3
    assert summary["max"] == pytest.approx(30.0, rel=HDR_RELATIVE_ERROR)
    assert tally.span_s == pytest.approx(0.030, abs=1e-6)


def test_follower_reads_only_new_whole_lines_and_events_seen_before_their_id(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    record(ledger, event("old", True))
    follower = LedgerFollower.from_end(ledger)
    record(ledger, event("x", True))  # completes before the client learned its id
    follower.poll()
    follower.expect(["x", "y", "old"])
    assert follower.completed_count() == 1  # "old" was written before we started following
    line = json.dumps(_as_dict(event("y", True)))
    with open(ledger, "a", encoding="utf-8") as fh:
        fh.write(line[:20])
    follower.poll()
    assert follower.completed_count() == 1
    with open(ledger, "a", encoding="utf-8") as fh:
        fh.write(line[20:] + "\n")
    follower.poll()
    assert follower.completed_count() == 2


def _as_dict(e: CompletionEvent) -> dict[str, object]:
    return {name: getattr(e, name) for name in e.__dataclass_fields__}


def test_wait_returns_a_partial_tally_instead_of_assuming_completion(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    record(ledger, event("a", True))
    follower = LedgerFollower(ledger)
    follower.expect(["a", "b"])
    tally = follower.wait(2, drain_timeout_s=0.3)  # "b" never comes: the safety timeout ends the wait
    assert tally.completed == 1 and tally.missing == 1 and not tally.done


def test_wait_stops_as_soon_as_everything_completed(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    record(ledger, event("a", True))
    follower = LedgerFollower(ledger)
    follower.expect(["a"])
    seen: list[int] = []
    tally = follower.wait(1, drain_timeout_s=600, on_progress=seen.append)  # would hang the test if wrong
    assert tally.done and seen == [1]


# -- the closed-loop burst (warm-up and fault pass) --------------------------------------------------


def test_burst_sends_each_request_once_and_counts_errors() -> None:
    seen: list[int] = []

    async def send(index: int) -> loadgen.Outcome:
        seen.append(index)
        await asyncio.sleep(0)
        if index % 10 == 0:
            raise ConnectionError("refused")
        if index % 10 == 1:
            return loadgen.Outcome(ok=False, status=503, error="HTTP 503")
        return loadgen.Outcome(ok=True, status=200, job_id=str(index))

    result = asyncio.run(loadgen.burst(send, 30, 4))
    assert sorted(seen) == list(range(30))
    assert result.sent == 30 and result.errors == 6 and len(result.job_ids) == 24
    assert any("ConnectionError" in sample for sample in result.error_samples)


# -- results, profiles and plumbing ------------------------------------------------------------------------


def tally_of(tmp_path: Path, completed: int, expected: int):
    ledger = tmp_path / "ledger.jsonl"
    for i in range(completed):
        record(ledger, event(f"j{i}", True, finished=100.0 + i / 1000))
    return read_tally(ledger, [f"j{i}" for i in range(completed)], expected=expected)


def drain_record_of(
    tmp_path: Path, completed: int, expected: int, repeat: int = 0, throughput_window: float = 1.0
):
    """A drain record (the scenario with the fewest extra fields)."""
    usage = {"cpu_s": 1.0, "peak_pss_mb": 50.0, "peak_rss_mb": 60.0, "processes": 1}
    measured = Measured(
        tally=tally_of(tmp_path / str(repeat), completed, expected),
        duration_s=throughput_window,
        resources={"api": usage},
        rate_word="drained",
        extra={"n": expected, "drained_per_s": completed / throughput_window, "first_to_last_s": 1.0},
    )
    return make_record(
        runner="celery", scenario="drain", repeat=repeat, config="safe", broker="redis", measured=measured
    )


def document_with(records: list[dict]) -> dict:
    doc = new_document(
        profile="quick",
        topology="local",
        environment={
            "python": "3.11.7",
            "platform": "linux",
            "cpu_model": "test",
            "cpu_count": 2,
            "memory_gb": 1.0,
            "redis_server": "6.2.14",
            "libraries": dict.fromkeys(
                ("fastapi", "starlette", "uvicorn", "anyio", "celery", "kombu", "rq", "dramatiq", "redis"),
                "1.0",
            ),
        },
        parameters={**QUICK.parameters(), "runner_order": [["celery"]]},
        runners={"celery": {"runner": "Celery"}},
    )
    doc["records"] = records
    return doc


def test_partial_completion_is_loud_and_marks_the_run_incomplete(tmp_path: Path) -> None:
    partial = drain_record_of(tmp_path, completed=8, expected=10)
    assert partial["missing"] == 2
    assert any("partial completion" in warning for warning in partial["warnings"])
    doc = finalize(document_with([partial]))
    assert doc["complete"] is False
    assert any("8/10 completed" in warning for warning in doc["warnings"])
    validate_results(doc)


def test_complete_document_validates_and_lands_under_latest(tmp_path: Path) -> None:
    doc = finalize(document_with([drain_record_of(tmp_path, completed=10, expected=10)]))
    assert doc["complete"] is True
    validate_results(doc)
    path = write_results(doc, tmp_path / "results")
    assert json.loads(path.read_text()) == doc
    latest = tmp_path / "results" / "latest"
    assert latest.is_symlink() and (latest / "results.json").exists()
    assert not os.path.isabs(os.readlink(latest))  # relative: the results folder can be moved


def test_noisy_repeats_are_flagged(tmp_path: Path) -> None:
    records = [
        drain_record_of(tmp_path, 10, 10, repeat=i, throughput_window=w)
        for i, w in enumerate((1.0, 2.0, 4.0))
    ]
    doc = finalize(document_with(records))
    assert any("CV" in warning for warning in doc["warnings"])
    assert all(any("noisy" in warning for warning in r["warnings"]) for r in records)


def test_an_interrupted_run_is_partial() -> None:
    doc = finalize(document_with([]), partial_reason="interrupted (Ctrl-C)")
    assert doc["complete"] is False and doc["warnings"][0].startswith("PARTIAL RUN")


def _search_with(
    monkeypatch: pytest.MonkeyPatch,
    knee: float,
    generator_us: float = 0.0,
    short_knee: float | None = None,
    full: list[bool] | None = None,
    **profile: Any,
) -> tuple[list[float], float, str]:
    """Run the accept search against a fake step that passes at or below ``knee`` (a short, bracketing step
    at or below ``short_knee`` when given: few samples can miss a tail); the fake generator spends
    ``generator_us`` of CPU per request. ``full`` collects whether each step was a full one."""
    tried: list[float] = []

    async def fake_step(ctx: Any, sampler: Any, follower: Any, rate: float, requests: int | None) -> Any:
        tried.append(rate)
        if full is not None:
            full.append(requests is not None)
        share = rate * generator_us / 1e6
        passed = rate <= (knee if requests is not None or short_knee is None else short_knee)
        return accept_scenario.Step(rate, {}, stats.new_histogram(), passed, 1, 0.0, [], share)

    monkeypatch.setattr(accept_scenario, "_step", fake_step)
    ctx = SimpleNamespace(profile=QUICK.with_overrides(**profile))
    _, best, why = asyncio.run(accept_scenario._search(ctx, None, None))  # type: ignore[arg-type]
    return tried, best, why


def test_accept_search_doubles_then_bisects_to_the_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    tried, best, why = _search_with(
        monkeypatch, 330, accept_start_rate=50, accept_ceiling_rate=10_000, accept_resolution=0.1
    )
    assert tried[:4] == [50, 100, 200, 400]
    assert why == accept_scenario.KNEE and best <= 330 and (330 - best) / best <= 0.1


def test_a_knee_rests_on_a_full_step_even_when_short_steps_passed_higher(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Short bracketing steps pass up to 450/s, full ones only up to 330/s: the 400/s candidate fails when
    # re-measured at full length, and the knee is bisected below it with full steps.
    full: list[bool] = []
    tried, best, why = _search_with(
        monkeypatch,
        330,
        short_knee=450,
        full=full,
        accept_start_rate=50,
        accept_resolution=0.1,
        accept_probe_requests=20,
        accept_knee_requests=100,
    )
    assert tried[:5] == [50, 100, 200, 400, 800] and full[:5] == [False] * 5
    assert all(full[5:]) and 400 in tried[5:]
    assert why == accept_scenario.KNEE and best <= 330 and (330 - best) / best <= 0.1
    assert full[len(tried) - 1 - tried[::-1].index(best)]  # the knee's own step was a full one


def test_accept_search_says_when_the_ceiling_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    tried, best, why = _search_with(monkeypatch, 10_000, accept_start_rate=50, accept_ceiling_rate=300)
    assert tried == [50, 100, 200, 300] and best == 300 and why == accept_scenario.CEILING


def test_accept_search_stops_where_the_generator_would_be_the_bottleneck(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 200 us per request: a quarter of a core at 1,250/s, so the 1,600/s step is the generator's.
    tried, best, why = _search_with(monkeypatch, 10_000, generator_us=200.0, accept_start_rate=50)
    assert tried == [50, 100, 200, 400, 800, 1600] and best == 1600 and why == accept_scenario.GENERATOR


def test_a_failure_while_the_generator_is_saturated_is_not_a_knee(monkeypatch: pytest.MonkeyPatch) -> None:
    tried, best, why = _search_with(monkeypatch, 1000, generator_us=200.0, accept_start_rate=50)
    assert tried == [50, 100, 200, 400, 800, 1600] and best == 800 and why == accept_scenario.GENERATOR


def test_the_default_ceiling_does_not_cut_off_a_fast_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    _, best, why = _search_with(monkeypatch, 5000, accept_start_rate=50)
    assert why == accept_scenario.KNEE and (5000 - best) / best <= QUICK.accept_resolution


def test_accept_search_halves_a_failing_start_a_bounded_number_of_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tried, best, why = _search_with(monkeypatch, 1, accept_start_rate=50, accept_max_halvings=2)
    assert tried == [50, 25, 12.5] and best == 0 and why == accept_scenario.NONE_PASSED


def test_scenario_order_is_shuffled_but_steady_follows_its_inputs() -> None:
    orders = scenario_orders(SCENARIOS, 20, seed=5)
    assert orders == scenario_orders(SCENARIOS, 20, seed=5)
    assert len({tuple(order) for order in orders}) > 1
    for order in orders:
        assert sorted(order) == sorted(SCENARIOS)
        assert order.index("steady") > max(order.index("accept"), order.index("drain"))


def test_placement_pins_only_with_three_cores_or_more() -> None:
    where = placement()
    assert where["pinned"] is (len(os.sched_getaffinity(0)) >= 3)
    assert where["reason"]


def test_cost_per_task_is_null_where_a_group_was_not_measured() -> None:
    used = {"cpu_s": 0.5, "peak_pss_mb": 1.0, "peak_rss_mb": 1.0, "processes": 1}
    absent = {"cpu_s": 0.0, "peak_pss_mb": 0.0, "peak_rss_mb": 0.0, "processes": 0}
    cost = cpu_us_per_task({"api": used, "workers": absent}, tasks=1000)
    assert cost == {"api": 500.0, "broker": None, "workers": None, "total": 500.0}
    assert cpu_us_per_task({}, tasks=10)["total"] is None


def test_bare_floor_route_has_the_projects_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from fbt_bench.scenarios.floor_app import create_app

    monkeypatch.setenv("API_KEY", "k")
    monkeypatch.setenv("FLOOR_MODE", "bare")
    with TestClient(create_app()) as client:
        assert client.post("/log/", json={"msg": "x"}).status_code == 401
        answer = client.post("/log/", json={"msg": "x"}, headers={"X-API-Key": "k"}).json()
    assert set(answer) == {"status", "job_id", "backend"}


def test_runner_order_is_shuffled_per_repeat_and_reproducible() -> None:
    runners = ("inprocess", "celery", "rq", "dramatiq")
    orders = runner_orders(runners, 5, seed=7)
    assert orders == runner_orders(runners, 5, seed=7)
    assert all(sorted(order) == sorted(runners) for order in orders)
    assert len({tuple(order) for order in orders}) > 1


def test_mixed_routes_cover_the_mix() -> None:
    assert sum(share for _, share in MIX) == pytest.approx(1.0)
    ctx = SimpleNamespace(profile=QUICK, seed=3)
    paths = mixed_routes(ctx)  # type: ignore[arg-type]
    assert set(paths) == {kind for kind, _ in MIX}
    for path, body in paths.values():
        assert path.startswith("/") and json.loads(body.replace("{i}", "7"))


def test_profiles_meet_the_issue() -> None:
    assert set(PROFILES) == {"quick", "default", "full", "network", "scaling"}
    # Only the optional network profile needs root (the hosts topology); every other stays on one loopback.
    assert [name for name, p in PROFILES.items() if p.rtts_ms] == ["network"]
    assert PROFILES["network"].rtts_ms == (0.0, 1.0, 5.0)
    assert DEFAULT.repeats >= 3 and QUICK.repeats >= 1 and PROFILES["full"].repeats >= 5
    assert DEFAULT.drain_n >= 5000 and PROFILES["full"].drain_n == 20_000
    assert DEFAULT.slots == QUICK.slots == DEFAULT.worker_processes * DEFAULT.worker_threads
    # Steps near the knee carry the profile's request count; far below they are shorter, never endless.
    knee = DEFAULT.accept_knee_requests
    assert DEFAULT.accept_step_s(800) * 800 >= knee
    assert DEFAULT.accept_step_s(1) <= DEFAULT.accept_max_step_s
    assert QUICK.with_overrides(drain_n=None, repeats=2).repeats == 2
    # The default runs what the verdict's rows rest on; the long-windowed ones once, full runs everything.
    assert {"accept", "drain", "email-io", "cpu-sweep", "burst"} <= set(DEFAULT.scenarios)
    assert set(DEFAULT.once) == {"cpu-sweep", "burst"} and not PROFILES["full"].once


def test_external_mode_is_chosen_by_api_urls() -> None:
    assert external_urls({}) == {}
    assert external_urls({"API_URL_CELERY": "http://api:8000/", "API_URL_RQ": ""}) == {
        "celery": "http://api:8000"
    }


def test_sampler_counts_cpu_of_the_measured_process() -> None:
    sampler = ResourceSampler(
        lambda: [ProcSet("loadgen", [os.getpid()], tree=False)], interval_s=0.05
    ).start()
    began = time.process_time()
    while time.process_time() - began < 0.2:  # burn a known amount of CPU
        pass
    usage = sampler.stop()["loadgen"]
    assert usage["cpu_s"] >= 0.15
    assert usage["peak_pss_mb"] > 0 and usage["processes"] == 1


# -- structure ---------------------------------------------------------------------------------------------

BENCH_SRC = Path(__file__).resolve().parents[1] / "benchmarks" / "src" / "fbt_bench"
# Who may not import whom: measuring is the bottom layer; scenarios and faults never import each other.
FORBIDDEN_IMPORTS = {
    "measuring": ("fbt_bench.scenarios", "fbt_bench.faults", "fbt_bench.report", "fbt_bench.harness"),
    "scenarios": ("fbt_bench.faults", "fbt_bench.report", "fbt_bench.harness", "fbt_bench.results"),
    "faults": ("fbt_bench.scenarios", "fbt_bench.report", "fbt_bench.harness", "fbt_bench.results"),
    "report": ("fbt_bench.faults", "fbt_bench.harness", "fbt_bench.cli"),
}


def _imports(path: Path) -> set[str]:
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN_IMPORTS))
def test_imports_point_down_never_sideways(package: str) -> None:
    for path in (BENCH_SRC / package).rglob("*.py"):
        bad = {m for m in _imports(path) if m.startswith(FORBIDDEN_IMPORTS[package])}
        assert not bad, f"{path.relative_to(BENCH_SRC)} imports {sorted(bad)}"


def test_the_harness_and_report_name_no_runner() -> None:
    import re

    quoted = re.compile(r'"(celery|rq|dramatiq|inprocess)"')
    for path in [*BENCH_SRC.rglob("*.py"), *BENCH_SRC.rglob("*.json"), *BENCH_SRC.rglob("*.j2")]:
        assert not quoted.search(path.read_text(encoding="utf-8")), path.relative_to(BENCH_SRC)


def test_steady_fractions_are_conditions_not_repeats(tmp_path: Path) -> None:
    from fbt_bench.results import flag_noisy_repeats

    records = [drain_record_of(tmp_path, 10, 10, repeat=0, throughput_window=w) for w in (1.0, 4.0)]
    for steady, fraction in zip(records, (0.5, 0.8), strict=True):
        steady["scenario"] = "steady"
        steady["extra"]["fraction"] = fraction
    assert flag_noisy_repeats(records) == []
    records[1]["extra"]["fraction"] = 0.5
    assert any("steady at 50%" in warning for warning in flag_noisy_repeats(records))


def test_steady_repeats_at_different_offered_rates_are_compared_by_what_they_kept_up(tmp_path: Path) -> None:
    from fbt_bench.results import flag_noisy_repeats
    from fbt_bench.scenarios.record import kept_up

    # Each repeat offers a fraction of its own capacity, so throughput moves with it: 100/s and 200/s offered,
    # both kept up, is not noise.
    records = [
        drain_record_of(tmp_path, 100, 100, repeat=r, throughput_window=w) for r, w in ((0, 1.0), (1, 0.5))
    ]
    for steady, offered in zip(records, (100.0, 200.0), strict=True):
        steady["scenario"] = "steady"
        steady["extra"] = {"fraction": 0.5, "offered_rate": offered}
    assert [kept_up(r) for r in records] == [1.0, 1.0]
    assert flag_noisy_repeats(records) == []
    # The second repeat fell behind: half of what arrived completed per second.
    records[1]["extra"]["arrival_rate"] = 400.0
    assert kept_up(records[1]) == 0.5
    assert any("completed ÷ offered" in warning for warning in flag_noisy_repeats(records))


def test_the_enqueue_probe_lists_only_jobs_put_on_a_queue(tmp_path: Path) -> None:
    # A runner whose tasks run in the API keeps them on the request's BackgroundTasks, dropped unrun by the
    # probe: nobody may wait for those ids in the ledger.
    env = {**os.environ, "BACKEND": "inprocess", "LEDGER_FILE": str(tmp_path / "ledger.jsonl")}
    out = subprocess.run(
        [sys.executable, "-m", "fbt_bench.scenarios.enqueue_probe", "enqueue", "--n", "3", "--ids"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["n"] == 3 and answer["ids"] == []


def test_a_steady_window_brings_its_completions_all_but_surely() -> None:
    import random

    from fbt_bench.scenarios.steady import steady_window_s

    window = steady_window_s(1000, 250.0)
    assert 4.0 < window < 4.6
    rng = random.Random(7)
    short = 0
    for _ in range(300):
        t, arrivals = rng.expovariate(250.0), 0
        while t < window:
            arrivals, t = arrivals + 1, t + rng.expovariate(250.0)
        short += arrivals < 1000
    assert short == 0


def test_the_api_cost_decomposition_adds_up_to_the_api_cpu() -> None:
    found = decomposition_record(
        rate=120.0,
        common_rate=120.0,
        requests=1000,
        api_cpu_s=2.5,  # 2,500 µs per request
        bare_us=1100.04,
        enqueues=1000,
        enqueue_cpu_s=0.8,  # 800 µs per enqueue, timed inside the API
    )
    assert found["at_common_rate"] is True
    assert (found["api_us"], found["bare_route_us"], found["library_enqueue_us"]) == (2500.0, 1100.0, 800.0)
    # The printed parts sum to the printed total.
    assert found["bare_route_us"] + found["library_enqueue_us"] + found["project_us"] == found["api_us"]
    lower = decomposition_record(
        rate=60.0, common_rate=120.0, requests=0, api_cpu_s=None, bare_us=None, enqueues=0, enqueue_cpu_s=0.0
    )
    assert lower["at_common_rate"] is False
    assert lower["api_us"] is lower["library_enqueue_us"] is lower["project_us"] is None


def test_fidelity_record_is_project_over_reference() -> None:
    tally = LedgerTally(
        expected=10,
        completed=10,
        duplicated=0,
        failed=0,
        missing=0,
        first_enqueued_at=0.0,
        first_finished_at=100.0,
        last_finished_at=102.0,
        latency=new_histogram(),
        latency_by_kind={},
    )
    usage = {"workers": ProcUsage(cpu_s=0.01, peak_pss_mb=1.0, peak_rss_mb=1.0, processes=2)}
    reference = Reference(
        workers=(("worker",),), enqueue=("enqueue",), layout="2 processes", options={"a": 1}
    )
    window = Draining(after_completed=0, seconds=2.0, tasks=10, usage=usage)
    drained = summarize_reference(reference, tally, 10, 99.5, window, 12.34, {"a": 1})
    assert (drained.drained_per_s, drained.first_to_last_s, drained.start_to_first_s) == (5.0, 2.0, 0.5)
    assert drained.cpu_us_per_task["workers"] == 1000.0
    assert drained.as_record()["options"] == {"a": 1} and drained.as_record()["enqueue_cpu_us"] == 12.3
    assert fidelity(4.5, drained.drained_per_s) == 0.9


def test_the_once_scenarios_run_in_the_first_repeat_on_the_default_broker_only() -> None:
    from fbt_bench.harness import Unit
    from fbt_bench.topology import System

    def first(repeat: int, system: System | None) -> bool:
        return Unit._first_on_default_broker(SimpleNamespace(repeat=repeat, system=system))  # type: ignore[arg-type]

    assert first(0, System("celery", "redis")) and first(0, System("inprocess", "none"))
    assert not first(0, System("celery", "rabbitmq")) and not first(1, System("celery", "redis"))
    assert first(0, None) and not first(2, None)  # a floor: its first repeat
