"""email-io: N emails to an SMTP sink that takes ``smtp_delay_ms`` per message: throughput vs slots/delay.

The emails are sent by the harness's closed-loop httpx client, on purpose: the figure is the workers'
throughput against the sink's delay, a few hundred requests, and a closed loop keeps every slot busy without
flooding 2 cores. The harness's own CPU per request is measured and recorded all the same.
"""

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fbt_bench.measuring import loadgen, stats
from fbt_bench.measuring.api_client import ApiClient
from fbt_bench.measuring.ledger_reader import LedgerTally
from fbt_bench.scenarios.context import ScenarioContext, drain, finish_window, send_warnings
from fbt_bench.scenarios.record import Measured, loadgen_us, make_record


async def burst_of(
    ctx: ScenarioContext,
    scenario: str,
    n: int,
    send: Callable[[ApiClient, int], Awaitable[loadgen.Outcome]],
) -> tuple[loadgen.BurstResult, LedgerTally, dict[str, Any], float, float]:
    """Send ``n`` jobs as fast as the API takes them, then wait for the ledger (the burst scenarios)."""
    follower = ctx.follower()
    with ctx.sampler() as sampler:
        ctx.progress.phase(f"{ctx.tag(scenario)}: sending {n}")
        began_wall = time.time()
        async with ctx.client() as client:
            result = await loadgen.burst(lambda i: send(client, i), n, ctx.profile.burst_concurrency)
        sent_wall = time.time()
        follower.expect(result.job_ids)
        await drain(ctx, follower, len(result.job_ids), f"{ctx.tag(scenario)} completed")
        resources = sampler.stop()
    return result, follower.tally(expected=n), resources, began_wall, sent_wall


def burst_record(
    ctx: ScenarioContext,
    scenario: str,
    result: loadgen.BurstResult,
    tally: LedgerTally,
    resources: dict[str, Any],
    duration: float,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """The record of a closed-loop burst: its sender's CPU per request comes from the harness's group."""
    measured = Measured(
        tally=tally,
        duration_s=duration,
        resources=resources,
        loadgen_cpu_us_per_request=None,
        client_latency_ms=stats.summarize_ms(result.latencies_ms),
        extra={**extra, "harness_cpu_us_per_request": loadgen_us(resources, result.sent)},
        warnings=send_warnings("send", result.sent, result.errors, result.error_samples),
    )
    return make_record(
        runner=ctx.runner,
        scenario=scenario,
        repeat=ctx.repeat,
        config=ctx.config,
        broker=ctx.broker,
        measured=measured,
    )


async def email_io(ctx: ScenarioContext) -> dict[str, Any]:
    p = ctx.profile
    result, tally, resources, began, _ = await burst_of(
        ctx,
        "email-io",
        p.email_n,
        lambda client, i: client.send_mail(f"user{i}@example.com", f"Welcome #{i}", "Thanks for joining"),
    )
    duration = finish_window(tally, began)
    throughput = tally.completed / duration if duration else 0.0
    ideal = p.slots / (p.smtp_delay_ms / 1000.0) if p.smtp_delay_ms else None
    extra = {
        "ideal_throughput_per_s": round(ideal, 2) if ideal else None,
        "efficiency": round(throughput / ideal, 3) if ideal else None,
        "delay_ms": p.smtp_delay_ms,
        "send_s": round(result.send_s, 3),
    }
    return burst_record(ctx, "email-io", result, tally, resources, duration, extra)
