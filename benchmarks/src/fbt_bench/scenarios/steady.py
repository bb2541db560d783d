"""steady: open-loop arrivals of POST /log/ at fixed fractions of what this runner can sustain.

Capacity is the lower of its accept knee and its drain rate, both measured earlier in the same repeat
(the harness orders steady after accept and drain). Each fraction sends for a warm-up, excluded from the
latencies, then for a window long enough for ``steady_completions`` completions at that rate (capped by
``steady_max_window_s``); end-to-end latency (ledger finished_at - enqueued_at) per task kind, each with
its count. One record per fraction.
"""

import math
from typing import Any

from fbt_bench.measuring import stats
from fbt_bench.scenarios.context import ScenarioContext, drain, open_loop_warnings
from fbt_bench.scenarios.record import Measured

BODY = '{"msg": "steady #{i}"}'
MIN_SAMPLES = 1000
# Poisson arrivals of mean n over a window vary by sqrt(n): sizing the window for n + 4 sqrt(n) makes fewer
# than n arrivals a 1-in-30,000 event rather than a coin toss.
POISSON_SDS = 4.0


def steady_window_s(completions: int, rate: float) -> float:
    """Seconds of Poisson arrivals at ``rate`` that bring at least ``completions`` arrivals all but surely."""
    return (completions + POISSON_SDS * math.sqrt(completions)) / rate


class NoCapacity(RuntimeError):
    """steady ran without an accept knee and a drain rate from the same repeat."""


async def steady(ctx: ScenarioContext) -> list[dict[str, Any]]:
    known = ctx.capacity()
    rates = [known[k] for k in ("accept", "drain") if known.get(k)]
    if not rates:
        raise NoCapacity(f"{ctx.key}: no accept knee or drain rate measured in this repeat")
    capacity = min(rates)
    return [await _at(ctx, fraction, capacity, known) for fraction in ctx.profile.steady_fractions]


async def _at(
    ctx: ScenarioContext, fraction: float, capacity: float, known: dict[str, float]
) -> dict[str, Any]:
    p = ctx.profile
    offered = round(capacity * fraction, 1)
    window = min(p.steady_max_window_s, steady_window_s(p.steady_completions, offered))
    ctx.progress.phase(
        f"{ctx.tag('steady')}: {offered:g}/s ({fraction:.0%}) for {p.steady_warmup_s + window:.1f} s"
    )
    follower = ctx.follower()
    with ctx.sampler() as sampler:
        result = await ctx.open_loop(
            ctx.spec(offered, p.steady_warmup_s + window, body=BODY, poisson_seed=ctx.seed)
        )
        follower.expect(result.ok_job_ids())
        await drain(ctx, follower, len(result.ok_job_ids()), f"{ctx.tag('steady')} {fraction:.0%} completed")
        resources = sampler.stop()
    everything = follower.tally(expected=result.planned)
    start = everything.first_enqueued_at
    tally = follower.tally(
        expected=result.planned, enqueued_from=start + p.steady_warmup_s if start else None
    )
    span = max((tally.last_finished_at or 0.0) - (start or 0.0), 0.0)
    warnings = open_loop_warnings("steady", result)
    kept = stats.summarize(tally.latency)["n"]
    if kept < MIN_SAMPLES:
        warnings.append(
            f"{kept} completions after the warm-up, fewer than {MIN_SAMPLES}: p99.9 is the max"
            + (" (the quick profile's short window)" if p.name == "quick" else "")
        )
    extra = {
        "fraction": fraction,
        "offered_rate": offered,
        # A seeded Poisson schedule sends a few % more or fewer than offered x duration: what it really sent.
        "arrival_rate": round(result.planned / (p.steady_warmup_s + window), 2),
        "capacity_per_s": round(capacity, 1),
        "capacity_from": {k: round(v, 1) for k, v in known.items() if k in ("accept", "drain")},
        "warmup_s": p.steady_warmup_s,
        "window_s": round(window, 3),
        "loadgen_wakeups_per_request": round(result.wakeups_per_request, 2),
        "latency_by_kind": {kind: stats.summarize(h) for kind, h in sorted(tally.latency_by_kind.items())},
    }
    measured = Measured(
        tally=tally,
        duration_s=span,
        resources=resources,
        loadgen_cpu_us_per_request=result.cpu_us_per_request,
        loadgen_core_share=result.core_share,
        client_latency_ms=stats.summarize_ms(lat * 1000.0 for lat in result.ok_latencies_s()),
        extra=extra,
        warnings=warnings,
    )
    return ctx.record("steady", measured)
