"""The harness end to end on a shrunken quick profile: real Redis, SMTP sink, API and workers for every
runner, every scenario, both floors, and each broker runner's fidelity reference. Asserts correctness only
(schema, reports, exactly-once completion, no process left behind), never speed."""

import json
from pathlib import Path

import pytest

from fbt_bench.harness import Plan, publish, run
from fbt_bench.profiles import QUICK
from fbt_bench.scenarios.baselines import BASELINES
from fbt_bench.scenarios.registry import FLOOR_SCENARIOS
from fbt_bench.schema import validate_results
from fbt_devstack.processes import descendants_of_self
from fbt_tasks.registry import installed_runners

RUNNERS = installed_runners()

# Every installed runner through the harness takes minutes: CI runs it in its second step (make test-slow).
pytestmark = [pytest.mark.e2e, pytest.mark.bench, pytest.mark.slow, pytest.mark.timeout(900)]

TINY = QUICK.with_overrides(
    name="tiny",
    repeats=1,
    # Fewer processes start faster; the slot budget is still equal across runners.
    worker_processes=1,
    worker_threads=2,
    accept_start_rate=20.0,
    accept_ceiling_rate=40.0,
    accept_min_step_s=0.5,
    accept_max_step_s=1.0,
    accept_knee_requests=20,
    accept_max_halvings=1,
    decomposition_rate=40.0,
    decomposition=True,  # quick skips it; the e2e run keeps the path covered
    drain_n=40,
    steady_fractions=(0.5,),
    steady_completions=10,
    steady_warmup_s=0.2,
    steady_max_window_s=1.0,
    email_n=6,
    cpu_n=2,
    image_width=320,
    image_height=240,
    probe_idle_s=0.3,
    mixed_rate=20,
    mixed_duration_s=0.5,
    warmup_n=2,
    drain_timeout_s=60.0,
)


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("results")
    # Session fixtures of other tests (a shared Redis, an SMTP sink) may be running: only new processes count.
    before = {proc.pid for proc in descendants_of_self()}
    # The fault pass has its own tests (test_faults.py); here it would only double the wall time.
    plan = Plan(
        profile=TINY,
        runners=RUNNERS,
        out_root=out,
        command="pytest tests/test_bench_e2e.py",
        fault_pass=False,
        # Each runner on its default broker; RabbitMQ configurations have their own tests.
        brokers=("redis",),
    )
    result = run(plan)
    reports, problems = publish(result)
    left = [proc for proc in descendants_of_self() if proc.pid not in before]
    return result, reports, problems, left


def test_nothing_is_left_running(outcome) -> None:
    *_, left = outcome
    assert left == []


def test_results_validate_and_both_reports_exist(outcome) -> None:
    result, reports, problems, _ = outcome
    assert problems == []
    on_disk = json.loads(result.results_path.read_text())
    validate_results(on_disk)
    latest = result.results_path.parent.parent / "latest"
    assert latest.resolve() == result.results_path.parent.resolve()
    assert {path.name for path in reports} >= {"report.md", "report.html"}
    assert all(Path(path).stat().st_size > 0 for path in reports)


def test_every_runner_ran_every_scenario_exactly_once_per_job(outcome) -> None:
    result, *_ = outcome
    doc = result.document
    assert doc["complete"] is True, doc["warnings"]
    assert doc["topology"] == "local"
    seen = {(r["runner"], r["scenario"]) for r in doc["records"]}
    in_api = {runner for runner in RUNNERS if doc["runners"][runner]["runs_in_api"]}
    # No drain where tasks run in the API: there is no queue to pre-fill.
    expected = {
        (runner, scenario)
        for runner in RUNNERS
        for scenario in TINY.scenarios
        if not (scenario == "drain" and runner in in_api)
    }
    expected |= {(floor, scenario) for floor in BASELINES for scenario in FLOOR_SCENARIOS[floor]}
    # accept may find no passing rate on a loaded machine; then steady has only drain to go by, still runs.
    assert seen == expected
    for record in doc["records"]:
        where = f"{record['runner']}/{record['scenario']}"
        assert record["expected"] > 0, where
        assert record["completed"] == record["expected"], where
        assert record["duplicated"] == 0, where
        if record["scenario"] not in ("accept", "steady"):  # accept: client latency; steady: after warm-up
            assert record["latency_ms"]["n"] == record["completed"], where
        assert record["broker"] and "total" in record["cpu_us_per_task"], where


def test_every_broker_runner_drained_beside_its_library_and_the_decomposition_adds_up(outcome) -> None:
    result, *_ = outcome
    for record in result.document["records"]:
        where, extra = f"{record['runner']}/{record['scenario']}", record["extra"]
        in_api = result.document["runners"].get(record["runner"], {}).get("runs_in_api")
        if record["scenario"] == "drain" and record["runner"] in RUNNERS and not in_api:
            reference = extra["reference"]
            assert reference["method"] == "paired", where
            # As many jobs as the runner drained alone in the profile's fidelity_s, every one completed. A job
            # run twice is counted, not asserted against: SAQ runs a few twice with no fault (tobymao/saq#277).
            n = reference["n"]
            assert (reference["completed"], reference["project_completed"]) == (n, n), where
            if extra["fidelity"] is not None:  # a tiny N may leave the two sides no shared window
                ratio = reference["project_per_s"] / reference["reference_per_s"]
                assert extra["fidelity"] == round(ratio, 3), where
            assert extra["startup_cpu_s"] >= 0, where
        if record["scenario"] == "accept" and (parts := extra.get("decomposition")):
            if None not in (parts["api_us"], parts["bare_route_us"], parts["library_enqueue_us"]):
                total = parts["bare_route_us"] + parts["library_enqueue_us"] + parts["project_us"]
                assert total == pytest.approx(parts["api_us"], abs=0.11), where


def test_runner_configuration_and_order_are_recorded(outcome) -> None:
    result, *_ = outcome
    doc = result.document
    assert set(doc["runners"]) == set(RUNNERS) | set(BASELINES)
    assert doc["runners"]["inprocess"]["threadpool_tokens"] == TINY.slots
    assert sorted(doc["parameters"]["runner_order"][0]) == sorted((*RUNNERS, *BASELINES))
    assert doc["parameters"]["placement"]["reason"] and doc["parameters"]["time_spent_s"]["phases"]
    assert doc["parameters"]["slots"] == TINY.slots
    assert doc["faults"] == []


# The full profile's two long scenarios, shrunk to seconds: one runner whose tasks run in the API, one queue.
SWEEP_TINY = TINY.with_overrides(
    name="tiny-full",
    scenarios=("cpu-sweep", "burst"),
    sweep_start_hz=2.0,
    sweep_max_hz=4.0,
    sweep_max_points=2,
    sweep_warmup_s=0.5,
    sweep_window_s=1.0,
    sweep_min_probes=20,
    burst_s=1.0,
    burst_factor=2.0,
)


def test_the_sweep_and_the_burst_run_end_to_end_and_leave_nothing(tmp_path: Path) -> None:
    before = {proc.pid for proc in descendants_of_self()}
    plan = Plan(
        profile=SWEEP_TINY,
        runners=("inprocess", "rq"),
        baselines=(),
        out_root=tmp_path,
        command="pytest tests/test_bench_e2e.py",
        fault_pass=False,
        brokers=("redis", "none"),
    )
    result = run(plan)
    reports, problems = publish(result)
    assert problems == [] and result.failures == [], result.failures
    records = result.document["records"]
    sweeps = [r for r in records if r["scenario"] == "cpu-sweep"]
    assert sorted((r["runner"], r["extra"]["placement"]) for r in sweeps) == [
        ("inprocess", "shared"),
        ("inprocess", "split"),
        ("rq", "shared"),
        ("rq", "split"),
    ]
    for record in sweeps:
        assert record["completed"] == record["expected"] > 0
        assert record["extra"]["points"] and record["extra"]["n"] > 0 and record["extra"]["why"]
    bursts = {r["runner"]: r["extra"] for r in records if r["scenario"] == "burst"}
    assert set(bursts) == {"inprocess", "rq"}
    # Where the backlog waited: never in a broker for tasks that run in the API, never in the API for a queue.
    assert bursts["inprocess"]["at_peak"]["in_broker"] == 0 and bursts["rq"]["at_peak"]["in_api"] == 0
    assert all(extra["recovery_s"] is not None and extra["health_ms"]["n"] > 0 for extra in bursts.values())
    assert "## The answer, by kind of work" in next(p for p in reports if p.suffix == ".md").read_text()
    assert [p for p in descendants_of_self() if p.pid not in before] == []
