"""One record (runner x scenario x repeat) of results.json, in the shape every scenario and floor shares.

A record whose ledger count is off (missing, duplicated or failed jobs) carries warnings saying so; the
document around it (``fbt_bench.results``) is then marked incomplete.

Cost per task: the CPU each process group spent over the scenario's window, divided by the tasks the
record counts (completed tasks; accepted requests for accept). A group with no process seen in the window
(external mode, or the workers of a runner whose tasks run in the API) is ``null``, never a false zero.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from fbt_bench.measuring import stats
from fbt_bench.measuring.ledger_reader import LedgerTally
from fbt_bench.measuring.sampler import ProcUsage

RESOURCE_GROUPS = ("api", "workers", "broker", "smtp", "loadgen")
COST_GROUPS = ("api", "broker", "workers")
NOT_MEASURED = ProcUsage(cpu_s=0.0, peak_pss_mb=0.0, peak_rss_mb=0.0, processes=0)


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


def cpu_us_per_task(resources: Mapping[str, ProcUsage], tasks: int) -> dict[str, float | None]:
    """CPU µs per task for api, broker, workers and their total; null where a group was not measured."""
    out: dict[str, float | None] = {}
    for group in COST_GROUPS:
        usage = resources.get(group)
        measured = usage is not None and usage.get("processes", 1) > 0 and tasks > 0
        out[group] = round(usage["cpu_s"] * 1e6 / tasks, 1) if measured and usage is not None else None
    parts = [value for value in out.values() if value is not None]
    out["total"] = round(sum(parts), 1) if parts else None
    return out


def per_core(cost: Mapping[str, float | None]) -> float | None:
    """Tasks per second one fully busy core would carry at this total CPU cost per task."""
    total = cost.get("total")
    return round(1e6 / total, 1) if total else None


@dataclass
class Measured:
    """What a scenario measured, before it becomes a record."""

    tally: LedgerTally
    duration_s: float
    resources: dict[str, ProcUsage]
    rate_word: str = "completed"
    throughput_per_s: float | None = None  # None: completed / duration_s
    cost_tasks: int | None = None  # the divisor of cpu_us_per_task; None: completed
    latency: HdrHistogram | None = None  # None: the ledger's end-to-end latency
    loadgen_cpu_us_per_request: float | None = None
    # The generator's CPU over its window as a share of one core: what decides whether it could have been
    # the bottleneck (the per-request figure alone cannot: at low rates it is mostly wake-ups).
    loadgen_core_share: float | None = None
    client_latency_ms: stats.LatencySummary | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def make_record(
    *, runner: str, scenario: str, repeat: int, config: str, broker: str, measured: Measured
) -> dict[str, Any]:
    """One runner x scenario x repeat; ``measured.duration_s`` is the window the throughput covers."""
    m, tally = measured, measured.tally
    throughput = m.throughput_per_s
    if throughput is None:
        throughput = tally.completed / m.duration_s if m.duration_s > 0 else 0.0
    cost = cpu_us_per_task(m.resources, tally.completed if m.cost_tasks is None else m.cost_tasks)
    latency = tally.latency if m.latency is None else m.latency
    return {
        "runner": runner,
        "scenario": scenario,
        "repeat": repeat,
        "config": config,
        "broker": broker,
        "expected": tally.expected,
        "completed": tally.completed,
        "duplicated": tally.duplicated,
        "failed": tally.failed,
        "missing": tally.missing,
        "duration_s": round(m.duration_s, 3),
        "throughput_per_s": round(throughput, 2),
        "latency_ms": stats.summarize(latency),
        "enqueue_latency_ms": m.client_latency_ms,
        "cdf_ms": stats.cdf(latency),
        "resources": {name: dict(m.resources.get(name, NOT_MEASURED)) for name in RESOURCE_GROUPS},
        "cpu_us_per_task": cost,
        "tasks_per_s_per_core": per_core(cost),
        "loadgen_cpu_us_per_request": _round(m.loadgen_cpu_us_per_request),
        "loadgen_core_share": round(m.loadgen_core_share, 3) if m.loadgen_core_share is not None else None,
        "extra": {"rate_word": m.rate_word, **m.extra},
        "warnings": [*completion_warnings(tally), *m.warnings],
    }


def _round(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


def kept_up(record: Mapping[str, Any]) -> float | None:
    """Completed per second over the arrival rate, for a record sent open loop at a rate that differs by
    repeat (steady: a fraction of each repeat's own capacity). Across repeats this is comparable where the
    raw throughput is not: about 1 for a runner that kept up. The arrival rate is what the seeded Poisson
    schedule really sent (``arrival_rate``), else the offered rate. None for a record without either.
    """
    extra = record.get("extra", {})
    rate = extra.get("arrival_rate") or extra.get("offered_rate")
    if not isinstance(rate, int | float) or rate <= 0:
        return None
    return float(record["throughput_per_s"]) / float(rate)
