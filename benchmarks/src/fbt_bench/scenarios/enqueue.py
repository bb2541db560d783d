"""enqueue: open-loop constant arrivals of POST /log/ at several rates.

Client latency is measured from the intended send time; the record names the highest rate whose p99 stays
under the SLO, and the enqueue cost, defined as (API CPU + broker CPU) / tasks sent while sending.
"""

from dataclasses import dataclass
from typing import Any

from hdrh.histogram import HdrHistogram

from fbt_bench.measuring import loadgen, stats
from fbt_bench.measuring.api_client import ApiClient
from fbt_bench.measuring.ledger_reader import LedgerFollower
from fbt_bench.measuring.sampler import ResourceSampler
from fbt_bench.scenarios.context import ScenarioContext, drain, send_warnings
from fbt_bench.scenarios.record import make_record


async def enqueue(ctx: ScenarioContext) -> dict[str, Any]:
    p = ctx.profile
    follower = ctx.follower()
    steps: list[Step] = []
    with ctx.sampler() as sampler:
        async with ctx.client() as client:
            for rate in p.enqueue_rates:
                steps.append(await _at_rate(ctx, client, sampler, follower, rate))
        resources = sampler.stop()
    planned = sum(len(loadgen.schedule(rate, p.enqueue_duration_s)) for rate in p.enqueue_rates)
    tally = follower.tally(expected=planned)
    rates = [step.entry for step in steps]
    sent_total = sum(step.entry["sent"] for step in steps)
    api_broker_cpu_s = sum(step.api_broker_cpu_s for step in steps)
    all_latencies = stats.new_histogram()
    for step in steps:
        all_latencies.add(step.histogram)
    extra = {
        "rates": rates,
        "max_rate_under_slo": max_rate_under_slo(rates, p.slo_ms),
        # Someone else's API and broker are not sampled in external mode: no cost rather than a false zero.
        "enqueue_cost_us": round(api_broker_cpu_s / sent_total * 1e6, 1)
        if sent_total and ctx.deployment.topology == "local"
        else None,
        "enqueue_cost_definition": "(API CPU s + broker CPU s) in the send windows / requests sent, in µs",
        "slo_ms": p.slo_ms,
    }
    return make_record(
        runner=ctx.runner,
        scenario="enqueue",
        repeat=ctx.repeat,
        config=ctx.config,
        tally=tally,
        duration_s=sum(step.send_window_s for step in steps),
        resources=resources,
        enqueue_latency_ms=stats.summarize(all_latencies),
        extra=extra,
        warnings=[warning for step in steps for warning in step.warnings],
    )


@dataclass
class Step:
    """One offered rate: its entry in ``extra.rates``, and what the record sums over the rates."""

    entry: dict[str, Any]
    histogram: HdrHistogram
    send_window_s: float
    api_broker_cpu_s: float
    warnings: list[str]


async def _at_rate(
    ctx: ScenarioContext,
    client: ApiClient,
    sampler: ResourceSampler,
    follower: LedgerFollower,
    rate: int,
) -> Step:
    """Send at ``rate`` for the profile's duration, then let the backlog clear before the next rate."""
    p = ctx.profile
    ctx.progress.phase(f"{ctx.tag('enqueue')}: {rate}/s for {p.enqueue_duration_s:g} s")
    before = sampler.snapshot()
    result = await loadgen.open_loop(
        lambda i: client.log(f"enqueue {ctx.runner} {rate}/s #{i}"),
        rate,
        p.enqueue_duration_s,
        max_in_flight=p.max_in_flight,
    )
    after = sampler.snapshot()
    follower.expect(result.job_ids)
    histogram = stats.histogram_of(result.latencies_ms)
    entry = {
        "rate": rate,
        "sent": result.sent,
        "errors": result.errors + result.overflow,
        "achieved_rate": round(result.achieved_rate, 2),
        "latency_ms": stats.summarize(histogram),
    }
    cpu_s = sum(after[g]["cpu_s"] - before[g]["cpu_s"] for g in ("api", "broker") if g in after)
    warnings = send_warnings(f"{rate}/s", result.sent, result.errors, result.error_samples, result.overflow)
    # Let the backlog clear so the next rate starts from an empty queue.
    await drain(ctx, follower, follower.tally().expected, f"{ctx.tag('enqueue')} drain {rate}/s")
    return Step(entry, histogram, result.elapsed_s, cpu_s, warnings)


def max_rate_under_slo(rates: list[dict[str, Any]], slo_ms: float) -> int | None:
    """The highest rate that, like every lower rate, kept p99 under the SLO with no failed request."""
    best = None
    for entry in sorted(rates, key=lambda e: e["rate"]):
        if entry["errors"] or entry["sent"] == 0 or entry["latency_ms"]["p99"] > slo_ms:
            break
        best = entry["rate"]
    return best
