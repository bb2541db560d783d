"""api-deploy: a rolling restart of the API while requests keep arriving at half the runners' email capacity.

The API gets SIGTERM (uvicorn's graceful shutdown: in-flight requests finish, and with them the
BackgroundTasks they carry), a SIGKILL once the deploy grace period has passed, and a new process on the same
port. The short-grace variant sends a burst first, so a backlog waits in the runner, and allows a grace period
shorter than that backlog, as an orchestrator with a short termination timeout would.

Meanwhile the load does not stop: requests sent while no API listens are counted apart (refused at the door,
for the client to retry), never as lost jobs. For BackgroundTasks the API is where the tasks live, so the
question is how many of them a graceful restart still runs; for a broker runner, that restarting the API loses
nothing it accepted.
"""

import asyncio
import time
from typing import Any

from fbt_bench.faults.observe import MARGIN_S, FaultContext
from fbt_bench.faults.outage import outage_answers, outage_probe

# Seconds of load before the SIGTERM, so the deploy meets requests and tasks in flight, not an idle API.
LEAD_S = 2.0


def half_capacity_hz(ctx: FaultContext) -> float:
    """Half of what the slots send: each email holds a slot for the sink's delay."""
    p = ctx.params
    return p.slots / (p.smtp_delay_ms / 1000) / 2


async def api_deploy(ctx: FaultContext) -> dict[str, Any]:
    """SIGTERM the API under half-capacity load, replace it, and watch every job it accepted. The
    short-grace variant first sends a burst, so a backlog waits, and allows a grace shorter than it."""
    p, stack = ctx.params, ctx.stack
    rate = half_capacity_hz(ctx)
    short = ctx.cell.variant == "short-grace"
    grace = p.short_grace_s if short else p.deploy_grace_s
    back = asyncio.Event()
    probing = asyncio.create_task(outage_probe(ctx, back, rate))
    sending = asyncio.create_task(ctx.burst(p.backlog_n, "backlog")) if short else None
    await asyncio.sleep(LEAD_S)
    if sending is not None:
        await sending  # every burst request answered: the backlog now waits in the runner
    backlog = f", {p.backlog_n} emails just accepted" if short else ""
    ctx.phase(f"rolling restart of the API under {rate:g} requests/s{backlog} (grace {grace:g} s)")
    fault_at = time.time()
    graceful = await asyncio.to_thread(stack.redeploy_api, grace)
    up_at = time.time()
    back.set()
    answers = await probing
    await asyncio.to_thread(ctx.restart_dead)
    probe_id = await ctx.probe()
    bound = ctx.runner.faults.redelivery_bound_s(ctx.described)
    window = (up_at - fault_at) + MARGIN_S + (bound if bound is not None and bound <= p.patience_s else 0.0)
    await asyncio.to_thread(ctx.watch, fault_at + window, probe_id)
    during = outage_answers([a for a in answers if fault_at <= a[0] <= up_at], up_at - fault_at)
    counts = ", ".join(f"{n} x {kind}" for kind, n in during["answers"].items() if n or kind == "hang")
    how = "exited gracefully" if graceful else f"SIGKILLed after the {grace:g} s grace period"
    ctx.notes.append(
        f"the old API {how}; the new one answered after {during['down_s']:g} s; meanwhile {counts}, "
        f"slowest {during['max_latency_ms']:.0f} ms"
    )
    return {
        **ctx.tally(fault_at, set(), probe_id, time.time() - fault_at),
        "outage": during,
        "graceful": graceful,
        "shutdown_grace_s": grace,
        "offered_per_s": rate,
    }
