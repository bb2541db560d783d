"""email-io: N emails to an SMTP sink that takes ``smtp_delay_ms`` per message: throughput vs slots/delay.

The emails go through the open-loop generator like every other scenario's requests (its own process, its
CPU per request recorded), offered at ``email_offered_factor`` times the ideal throughput (slots / delay)
so a message is always waiting for every slot. Throughput runs from the first job enqueued to the last
completion, both from the ledger: the generator's start-up is not in the window.
"""

from typing import Any

from fbt_bench.measuring import stats
from fbt_bench.measuring.ledger_reader import LedgerTally
from fbt_bench.measuring.openloop import OpenLoopResult
from fbt_bench.scenarios.context import ScenarioContext, drain, open_loop_warnings
from fbt_bench.scenarios.mixed import routes
from fbt_bench.scenarios.record import Measured


async def open_burst(
    ctx: ScenarioContext, scenario: str, kind: str, n: int, rate: float
) -> tuple[OpenLoopResult, LedgerTally, dict[str, Any]]:
    """Offer ``n`` jobs of ``kind`` at ``rate`` (open loop), then wait for every one in the ledger."""
    path, body = routes(ctx)[kind]
    follower = ctx.follower()
    with ctx.sampler() as sampler:
        ctx.progress.phase(f"{ctx.tag(scenario)}: sending {n} at {rate:g}/s")
        result = await ctx.open_loop(ctx.spec(rate, n / rate, path=path, body=body))
        ids = result.ok_job_ids()
        follower.expect(ids)
        await drain(ctx, follower, len(ids), f"{ctx.tag(scenario)} completed")
        resources = sampler.stop()
    return result, follower.tally(expected=result.planned), resources


def email_rate(ctx: ScenarioContext) -> float:
    p = ctx.profile
    ideal = p.slots / (p.smtp_delay_ms / 1000.0) if p.smtp_delay_ms else None
    return round(p.email_offered_factor * ideal, 1) if ideal else p.mixed_rate


async def email_io(ctx: ScenarioContext) -> dict[str, Any]:
    p = ctx.profile
    rate = email_rate(ctx)
    result, tally, resources = await open_burst(ctx, "email-io", "send_email", p.email_n, rate)
    duration = tally.span_s
    throughput = tally.completed / duration if duration else 0.0
    ideal = p.slots / (p.smtp_delay_ms / 1000.0) if p.smtp_delay_ms else None
    extra = {
        "ideal_throughput_per_s": round(ideal, 2) if ideal else None,
        "efficiency": round(throughput / ideal, 3) if ideal else None,
        "delay_ms": p.smtp_delay_ms,
        "offered_rate": rate,
        "send_s": round(result.intended_s[-1], 3) if result.planned else 0.0,
    }
    measured = Measured(
        tally=tally,
        duration_s=duration,
        resources=resources,
        loadgen_cpu_us_per_request=result.cpu_us_per_request,
        loadgen_core_share=result.core_share,
        client_latency_ms=stats.summarize_ms(lat * 1000.0 for lat in result.ok_latencies_s()),
        extra=extra,
        warnings=open_loop_warnings("send", result),
    )
    return ctx.record("email-io", measured)
