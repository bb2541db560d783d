"""cpu-sweep's threshold search, on a made-up API whose /health p99 breaks the SLO above a known rate."""

import asyncio

import pytest

from fbt_bench.profiles import DEFAULT, FULL, QUICK
from fbt_bench.scenarios.cpu_sweep import Point, Search, threshold_search


def search(breaks_above: float | None, **overrides: float) -> Search:
    tried: list[float] = []

    async def measure(rate: float) -> Point:
        tried.append(rate)
        passed = breaks_above is None or rate <= breaks_above
        return Point(rate, 10.0 if passed else 90.0, 1000, 0, int(rate * 12), passed)

    options = {"start_hz": 2.0, "max_hz": 64.0, "resolution": 1.25, "max_points": 8, **overrides}
    found = asyncio.run(threshold_search(measure, **options))  # type: ignore[arg-type]
    assert [p.rate_hz for p in found.points] == tried
    return found


@pytest.mark.parametrize("breaks_above", [3.0, 11.0, 17.0, 40.0])
def test_the_threshold_is_a_passing_rate_within_the_resolution_of_the_first_failing_one(
    breaks_above: float,
) -> None:
    found = search(breaks_above)
    assert found.threshold_hz is not None and found.threshold_hz <= breaks_above
    passed = [p.rate_hz for p in found.points if p.passed]
    failed = [p.rate_hz for p in found.points if not p.passed]
    assert found.threshold_hz == max(passed)
    assert min(failed) / found.threshold_hz <= 1.25
    assert len(found.points) <= 8


def test_no_break_up_to_the_ceiling_is_no_threshold_with_the_reason() -> None:
    found = search(None)
    assert found.threshold_hz is None and "64" in found.why
    assert [p.rate_hz for p in found.points] == [2.0, 4.0, 8.0, 16.0, 32.0, 64.0]


def test_a_break_at_the_first_rates_halves_down_to_the_floor() -> None:
    found = search(0.1)
    assert found.threshold_hz == 0.0 and "broke the SLO" in found.why
    assert [p.rate_hz for p in found.points] == [2.0, 1.0, 0.5, 0.25]


def test_the_point_budget_ends_a_search_that_has_not_converged() -> None:
    found = search(11.0, max_points=4, resolution=1.01)
    assert len(found.points) == 4 and found.threshold_hz == 8.0


def test_default_and_full_run_the_sweep_and_quick_leaves_it_out() -> None:
    assert "cpu-sweep" in FULL.scenarios and "cpu-sweep" in DEFAULT.scenarios
    assert "cpu-sweep" not in QUICK.scenarios
    assert DEFAULT.sweep_window_s >= 10 and DEFAULT.sweep_min_probes >= 1000
    assert (
        DEFAULT.sweep_min_probes / DEFAULT.sweep_window_s >= DEFAULT.probe_rate_hz
    )  # faster probes, said so


def test_the_eta_takes_a_units_earlier_time_and_the_mean_for_the_rest() -> None:
    from fbt_bench.eta import Eta

    eta = Eta(["rq", "celery", "rq", "celery"], started=0.0)
    assert eta.left_s() is None
    eta.finished("rq", 300.0)
    assert eta.left_s() == 900.0  # celery unknown: the mean (300) for it; rq again 300; celery 300
    eta.finished("celery", 100.0)
    assert eta.left_s() == 400.0
    assert "unit 2/4" in eta.line() and "left" in eta.line()
