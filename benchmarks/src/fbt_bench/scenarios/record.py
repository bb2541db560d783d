"""One record (runner x scenario x repeat) of results.json, in the shape every scenario and floor shares.

A record whose ledger count is off (missing, duplicated or failed jobs) carries warnings saying so; the
document around it (``fbt_bench.results``) is then marked incomplete.
"""

from collections.abc import Iterable
from typing import Any

from fbt_bench.measuring import stats
from fbt_bench.measuring.ledger_reader import LedgerTally
from fbt_bench.measuring.sampler import ProcUsage

RESOURCE_GROUPS = ("api", "workers", "broker", "smtp", "loadgen")


def completion_warnings(tally: LedgerTally) -> list[str]:
    """Loud, specific statements of anything but exactly-once completion of every expected job."""
    found: list[str] = []
    if tally.completed != tally.expected:
        found.append(
            f"partial completion: {tally.completed} of {tally.expected} jobs completed, "
            f"{tally.missing} missing (throughput and latency below cover only the completed jobs)"
        )
    if tally.duplicated:
        found.append(f"{tally.duplicated} jobs completed more than once (duplicate effects)")
    if tally.failed:
        found.append(f"{tally.failed} jobs failed without a successful attempt")
    return found


def make_record(
    *,
    runner: str,
    scenario: str,
    repeat: int,
    config: str,
    tally: LedgerTally,
    duration_s: float,
    resources: dict[str, ProcUsage],
    enqueue_latency_ms: stats.LatencySummary | None = None,
    extra: dict[str, Any] | None = None,
    warnings: Iterable[str] = (),
) -> dict[str, Any]:
    """One runner x scenario x repeat; ``duration_s`` is the window the throughput is computed over."""
    return {
        "runner": runner,
        "scenario": scenario,
        "repeat": repeat,
        "config": config,
        "expected": tally.expected,
        "completed": tally.completed,
        "duplicated": tally.duplicated,
        "failed": tally.failed,
        "missing": tally.missing,
        "duration_s": round(duration_s, 3),
        "throughput_per_s": round(tally.completed / duration_s, 2) if duration_s > 0 else 0.0,
        "latency_ms": stats.summarize(tally.latency),
        "enqueue_latency_ms": enqueue_latency_ms,
        "cdf_ms": stats.cdf(tally.latency),
        "resources": {
            name: resources.get(name, {"cpu_s": 0.0, "peak_rss_mb": 0.0}) for name in RESOURCE_GROUPS
        },
        "extra": extra or {},
        "warnings": [*completion_warnings(tally), *warnings],
    }
