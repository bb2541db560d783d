"""broker-full: the broker at its memory limit in the middle of a burst, for ``full_s``, then room again.

Redis gets ``maxmemory`` just above what it uses, with ``noeviction``; RabbitMQ raises its memory alarm
(``fbt_devstack.brokers.cap_broker_memory``). Meanwhile the API is probed at a fixed rate: it must answer, and
quickly, with an error a client can retry (503), never accept a job it could not store, never hang. The
workers keep running against the full broker; one that exits is restarted, as compose's restart policy would,
and the record says so. Once the limit is lifted the accepted jobs are watched as after any fault: lost,
held, re-executed and duplicated.
"""

import asyncio
import time
from typing import Any

from fbt_bench.faults.observe import MARGIN_S, FaultContext
from fbt_bench.faults.outage import outage_answers, outage_probe
from fbt_tasks.runner import BROKER_TITLES

# Room left above what Redis uses when the limit is set: none, so the broker is full from that moment; what
# the workers delete (a dequeued job, an acked message) makes room for as much again, as on a full server.
FULL_HEADROOM_BYTES = 0


async def broker_full(ctx: FaultContext) -> dict[str, Any]:
    """Cap the broker's memory after ``fault_after`` deliveries, keep it full ``full_s`` while probing the
    API, lift the cap, and watch the accepted jobs."""
    p, stack = ctx.params, ctx.stack
    broker = BROKER_TITLES[stack.settings.broker_name]
    sending = asyncio.create_task(ctx.burst(p.n, "fault"))
    await asyncio.to_thread(lambda: ctx.wait_for_deliveries(p.fault_after, in_flight=True))
    fault_at = time.time()
    back = asyncio.Event()
    probing = asyncio.create_task(outage_probe(ctx, back))
    limit = await asyncio.to_thread(stack.cap_broker_memory, FULL_HEADROOM_BYTES)
    ctx.phase(f"{broker} full for {p.full_s:g} s after {p.fault_after} deliveries: {limit}")
    full_at = time.time()
    await asyncio.sleep(p.full_s)
    died_while_full = stack.worker_name in stack.failed()
    await asyncio.to_thread(stack.lift_broker_memory_cap)
    lifted_at = time.time()
    back.set()
    answers = await probing
    await sending
    await asyncio.to_thread(ctx.restart_dead)
    probe_id = await ctx.probe()
    bound = ctx.runner.faults.redelivery_bound_s(ctx.described)
    backlog_s = p.n * p.smtp_delay_ms / 1000 / p.slots
    window = p.full_s + backlog_s + MARGIN_S + (bound if bound is not None and bound <= p.patience_s else 0)
    await asyncio.to_thread(ctx.watch, fault_at + window, probe_id)
    await asyncio.to_thread(ctx.restart_dead)
    full = outage_answers([a for a in answers if full_at <= a[0] <= lifted_at], lifted_at - full_at)
    counts = ", ".join(f"{n} x {kind}" for kind, n in full["answers"].items() if n or kind == "hang")
    ctx.notes.append(
        f"API while {broker} was full ({limit}): {counts}, slowest {full['max_latency_ms']:.0f} ms"
    )
    return {
        **ctx.tally(fault_at, set(), probe_id, time.time() - fault_at),
        "outage": full,
        "memory_limit": limit,
        "worker_exited_while_full": died_while_full,
    }
