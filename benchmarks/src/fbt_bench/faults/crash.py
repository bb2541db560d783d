"""broker-crash: SIGKILL Redis in the middle of an enqueue burst and start it again from its AOF.

Unlike broker-restart (SIGTERM: Redis flushes its AOF and exits cleanly), a SIGKILL gives Redis no chance to
flush: whatever of the acknowledged writes had not reached the AOF file is gone. The cell runs once per
``appendfsync`` policy (the cell's variant): ``everysec``, Redis's default, fsyncs about once a second;
``always`` fsyncs before every reply. Redis writes the AOF buffer to the file before it replies in both, so
a process crash (the page cache survives) may lose nothing while a host crash could lose the last second
under everysec: the record says what this crash measured, and what each policy costs on enqueue.
"""

import asyncio
import time
from typing import Any

from fbt_bench.faults.observe import MARGIN_S, FaultContext
from fbt_bench.measuring import loadgen


def latency_summary(latencies_ms: list[float]) -> dict[str, Any]:
    """p50 and p99 of the API's answers with their sample count (nearest rank)."""
    ordered = sorted(latencies_ms)
    if not ordered:
        return {"n": 0, "p50_ms": None, "p99_ms": None}

    def rank(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))], 2)

    return {"n": len(ordered), "p50_ms": rank(0.50), "p99_ms": rank(0.99)}


async def broker_crash(ctx: FaultContext) -> dict[str, Any]:
    """Measure the enqueue cost of the fsync policy, then SIGKILL Redis after ``fault_after`` accepted jobs."""
    p, stack = ctx.params, ctx.stack
    if stack.redis is None:
        raise RuntimeError("broker-crash needs the stack's own Redis")
    ctx.phase(f"enqueue cost under appendfsync {stack.redis.appendfsync}")
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
        ctx.phase(f"SIGKILL to Redis after {accepted_so_far} accepted jobs")
        fault_at = time.time()
        await asyncio.to_thread(stack.redis.kill)
        await asyncio.to_thread(stack.redis.start)
        up_s = time.time() - fault_at
        result = await sending
    ctx.accepted += result.job_ids
    ctx.refused += result.errors
    if result.errors:
        ctx.notes.append(f"{result.errors} of {p.n} requests refused while Redis restarted")
    await asyncio.to_thread(ctx.restart_dead)
    probe_id = await ctx.probe()
    bound = ctx.runner.faults.redelivery_bound_s(ctx.described)
    backlog_s = p.n * p.smtp_delay_ms / 1000 / p.slots
    window = backlog_s + up_s + MARGIN_S + (bound if bound is not None and bound <= p.patience_s else 0)
    await asyncio.to_thread(ctx.watch, fault_at + window, probe_id)
    await asyncio.to_thread(ctx.restart_dead)
    ctx.notes.append(
        f"appendfsync {stack.redis.appendfsync}: Redis back after {up_s:.1f} s; enqueue p50 "
        f"{latency_summary(cost.latencies_ms)['p50_ms']} ms before the crash"
    )
    return {
        **ctx.tally(fault_at, set(), probe_id, time.time() - fault_at),
        "appendfsync": stack.redis.appendfsync,
        "accepted_before_crash": accepted_so_far,
        "enqueue_latency": latency_summary(cost.latencies_ms),
    }
