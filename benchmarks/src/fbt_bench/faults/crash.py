"""broker-crash: SIGKILL the deployment's broker in the middle of an enqueue burst and start it again.

Unlike broker-restart (a clean stop: Redis flushes its AOF, RabbitMQ its queues), a SIGKILL gives the broker
no chance to flush: whatever of the acknowledged writes had not reached its files is gone.

- Redis: once per ``appendfsync`` policy (the cell's variant), restarted from its AOF. ``everysec``, Redis's
  default, fsyncs about once a second; ``always`` fsyncs before every reply. Redis writes the AOF buffer to
  the file before it replies in both, so a process crash (the page cache survives) may lose nothing while a
  host crash could lose the last second under everysec.
- RabbitMQ: the node's whole tree (the script, beam.smp and its helpers) is SIGKILLed and started again on
  the same node name and data dir. What survives is the runner's choice (durable or quorum queues,
  persistent messages, publisher confirms), which the record's configuration shows.

The record says what this crash measured, and what the configuration costs on enqueue.
"""

import asyncio
import time
from typing import Any

from fbt_bench.faults.observe import MARGIN_S, FaultContext
from fbt_bench.measuring import loadgen
from fbt_tasks.runner import BROKER_TITLES


def latency_summary(latencies_ms: list[float]) -> dict[str, Any]:
    """p50 and p99 of the API's answers with their sample count (nearest rank)."""
    ordered = sorted(latencies_ms)
    if not ordered:
        return {"n": 0, "p50_ms": None, "p99_ms": None}

    def rank(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))], 2)

    return {"n": len(ordered), "p50_ms": rank(0.50), "p99_ms": rank(0.99)}


async def broker_crash(ctx: FaultContext) -> dict[str, Any]:
    """Measure the enqueue cost of the configuration, then SIGKILL the broker after ``fault_after`` accepted
    jobs and start it again on the same data."""
    p, stack = ctx.params, ctx.stack
    broker = BROKER_TITLES[stack.settings.broker_name]
    fsync = stack.redis.appendfsync if stack.redis is not None and stack.rabbitmq is None else None
    setting = f"appendfsync {fsync}" if fsync else f"{broker}, {ctx.cell.config} configuration"
    ctx.phase(f"enqueue cost ({setting})")
    cost = await ctx.burst(p.n, "cost", counted=False)
    await asyncio.to_thread(ctx.wait_for_deliveries, cost.sent - cost.errors)
    accepted_so_far = 0
    crossed = asyncio.Event()

    async with ctx.client() as client:

        async def send(i: int) -> Any:
            nonlocal accepted_so_far
            outcome = await client.send_mail(f"fault{i}@example.com", f"{ctx.cell.fault} #{i}", "Fault run")
            if outcome.ok:
                accepted_so_far += 1
                if accepted_so_far >= p.fault_after:
                    crossed.set()
            return outcome

        sending = asyncio.create_task(loadgen.burst(send, p.n, p.burst_concurrency))
        await crossed.wait()
        ctx.phase(f"SIGKILL to {broker} after {accepted_so_far} accepted jobs")
        fault_at = time.time()
        await asyncio.to_thread(stack.kill_broker)
        await asyncio.to_thread(stack.start_broker)
        up_s = time.time() - fault_at
        result = await sending
    ctx.accepted += result.job_ids
    ctx.refused += result.errors
    if result.errors:
        ctx.notes.append(f"{result.errors} of {p.n} requests refused while {broker} restarted")
    await asyncio.to_thread(ctx.restart_dead)
    probe_id = await ctx.probe()
    bound = ctx.runner.faults.redelivery_bound_s(ctx.described)
    backlog_s = p.n * p.smtp_delay_ms / 1000 / p.slots
    window = backlog_s + up_s + MARGIN_S + (bound if bound is not None and bound <= p.patience_s else 0)
    await asyncio.to_thread(ctx.watch, fault_at + window, probe_id)
    await asyncio.to_thread(ctx.restart_dead)
    ctx.notes.append(
        f"{setting}: {broker} back after {up_s:.1f} s; enqueue p50 "
        f"{latency_summary(cost.latencies_ms)['p50_ms']} ms before the crash"
    )
    return {
        **ctx.tally(fault_at, set(), probe_id, time.time() - fault_at),
        **({"appendfsync": fsync} if fsync else {}),
        "accepted_before_crash": accepted_so_far,
        "broker_down_s": round(up_s, 2),
        "enqueue_latency": latency_summary(cost.latencies_ms),
    }
