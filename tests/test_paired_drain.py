"""The paired drain's arithmetic: the shared window and each side's rate inside it (fbt_bench.scenarios.paired).

The real drain, both sides' workers on a real broker, runs in test_bench_e2e.
"""

from pathlib import Path

from fbt_bench.measuring.ledger_reader import LedgerFollower
from fbt_bench.scenarios.paired import (
    MIN_IN_WINDOW,
    SharedWindow,
    cpu_at,
    cpu_per_job,
    paired,
    shared_window,
)
from fbt_tasks.ledger import CompletionEvent, record
from fbt_tasks.reference import Reference

REFERENCE = Reference(workers=(("worker",),), enqueue=("enqueue",), layout="8 slots", options={"a": 1})


def times(start: float, rate: float, n: int) -> list[float]:
    return [start + i / rate for i in range(n)]


def test_equal_rates_give_a_ratio_of_one_whatever_each_side_started_at() -> None:
    # The library's side started 3 s earlier (no start-up of its own to wait for): the window starts when
    # both are draining, so the head start does not count.
    window = shared_window(times(103.0, 100.0, 1000), times(100.0, 100.0, 1000))
    assert window is not None
    assert window.start >= 103.0 + 0.1 * 10.0 and window.project == window.reference


def test_the_ratio_is_each_sides_completions_in_the_same_window() -> None:
    window = shared_window(times(100.0, 80.0, 1000), times(100.0, 100.0, 1000))
    assert window is not None
    assert abs(window.project / window.reference - 0.8) < 0.01
    assert abs(window.reference / window.seconds - 100.0) < 1.0


def test_no_window_without_overlap_or_with_too_few_jobs_inside() -> None:
    assert shared_window(times(100.0, 100.0, 100), times(200.0, 100.0, 100)) is None
    assert shared_window([], times(100.0, 100.0, 100)) is None
    few = MIN_IN_WINDOW - 1
    assert shared_window(times(100.0, 1.0, few), times(100.0, 1.0, few)) is None


def test_the_record_counts_each_side_from_its_own_ids(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    for side, rate in (("p", 50.0), ("r", 100.0)):
        for index, finished in enumerate(times(100.0, rate, 200)):
            record(ledger, CompletionEvent(f"{side}{index}", "log", 99.0, finished, finished, 1, 1, True))
    record(ledger, CompletionEvent("r0", "log", 99.0, 150.0, 150.0, 1, 2, True))  # run twice
    project, library = LedgerFollower(ledger), LedgerFollower(ledger)
    project.expect(f"p{i}" for i in range(200))
    library.expect(f"r{i}" for i in range(200))
    project.poll(), library.poll()
    pair = paired(200, project, library, REFERENCE)
    assert (pair.completed, pair.duplicated, pair.project_completed, pair.project_duplicated) == (
        200,
        1,
        200,
        0,
    )
    assert pair.fidelity is not None and abs(pair.fidelity - 0.5) < 0.02
    assert pair.window_s is not None and pair.project_in_window and pair.reference_in_window
    kept = pair.as_record()
    assert kept["method"] == "paired" and kept["options"] == {"a": 1}
    assert pair.project_per_s == round(pair.project_in_window / pair.window_s, 2)


def testcpu_per_job_is_each_sides_cpu_inside_the_window_over_its_jobs_there() -> None:
    # Cumulative CPU seconds sampled every second: the runner's side 0.5 s per second, the library's 0.4.
    samples = [(100.0 + t, 0.5 * t, 0.4 * t) for t in range(11)]
    assert cpu_at(samples, 102.5, 0) == 1.25 and cpu_at(samples, 99.0, 0) is None
    window = SharedWindow(start=102.0, end=106.0, project=400, reference=500)
    assert cpu_per_job(samples, window, 0) == 5000.0  # 2.0 s over 400 jobs
    assert cpu_per_job(samples, window, 1) == 3200.0  # 1.6 s over 500 jobs
    assert cpu_per_job(samples, None, 0) is None and cpu_per_job([], window, 1) is None
