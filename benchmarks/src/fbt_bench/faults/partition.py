"""partition: the network between one host and the broker's cut mid-burst, every packet dropped both ways,
then mended.

The cell runs on the hosts topology (``fbt_devstack.netns``): the broker, the API and the workers each on a
host of their own, the SMTP sink outside (the mail provider). The cut isolates two bridge ports, so it is
silent: no reset, no "unreachable", only packets that never arrive, as when a switch or a security group
fails. Each side still reaches the SMTP sink and the harness.

- ``workers``: the workers are cut from the broker for longer than the configuration's redelivery bound (the
  heartbeat or visibility timeout after which the library hands a silent worker's jobs to another), so
  whatever the library does about a worker it no longer hears from, it has done. A job in hand can still
  send its email, and then fail to acknowledge it.
- ``api``: the API is cut from the broker while the outage probe posts emails: each must get a 503 within
  seconds, for the client to retry, never be accepted and lost, never hang.

After the cut is mended the accepted jobs are watched as after any fault: lost, held, re-executed, duplicated.
"""

import asyncio
import time
from typing import Any

from fbt_bench.faults.model import FaultParams
from fbt_bench.faults.observe import MARGIN_S, FaultContext
from fbt_bench.faults.outage import Answer, outage_answers, outage_probe
from fbt_tasks.fault_words import RABBITMQ_SILENCE_BOUND_S
from fbt_tasks.runner import BROKER_TITLES


def silence_bound_s(broker: str, bound_s: float | None) -> float | None:
    """After how long the broker hands a silent worker's jobs on: a RabbitMQ node, once its heartbeats are
    missed (a killed worker's connection closes at once, a cut one's never does); Redis queues, by the
    configuration's own redelivery bound."""
    return RABBITMQ_SILENCE_BOUND_S if broker == "rabbitmq" else bound_s


def cut_length_s(side: str, bound_s: float | None, params: FaultParams) -> float:
    """How long the cut lasts: past the redelivery bound for the workers, past HANG_S for the API."""
    if side == "api":
        return params.full_s
    if bound_s is None or bound_s == 0 or bound_s > params.patience_s:
        return params.partition_s
    return max(bound_s + params.partition_margin_s, params.partition_s)


async def partition(ctx: FaultContext) -> dict[str, Any]:
    """Cut the workers (or the API) off from the broker after ``fault_after`` deliveries, mend it after
    ``cut_length_s``, and watch the accepted jobs."""
    p, stack = ctx.params, ctx.stack
    hosts = stack.hosts
    if hosts is None:
        raise RuntimeError("partition runs on the hosts topology: the stack was started without hosts")
    side = ctx.cell.variant or "workers"
    broker = BROKER_TITLES[stack.settings.broker_name]
    bound = silence_bound_s(stack.settings.broker_name, ctx.runner.faults.redelivery_bound_s(ctx.described))
    length = cut_length_s(side, bound, p)
    sending = asyncio.create_task(ctx.burst(p.n, "fault"))
    await asyncio.to_thread(lambda: ctx.wait_for_deliveries(p.fault_after, in_flight=True))
    fault_at = time.time()
    back = asyncio.Event()
    probing = asyncio.create_task(outage_probe(ctx, back)) if side == "api" else None
    await asyncio.to_thread(hosts.isolate, side, hosts.broker_role)
    cut_at = time.time()
    ctx.phase(f"the {side} cut off from {broker} for {length:g} s after {p.fault_after} deliveries")
    try:
        await asyncio.sleep(length)
    finally:
        # Mended whatever happens, so a cancelled trial's stack stops on a whole network.
        await asyncio.to_thread(hosts.rejoin, side, hosts.broker_role)
    mended_at = time.time()
    back.set()
    answers: list[Answer] = await probing if probing is not None else []
    await sending
    await asyncio.to_thread(ctx.restart_dead)
    probe_id = await ctx.probe()
    backlog_s = p.n * p.smtp_delay_ms / 1000 / p.slots
    due = bound if bound is not None and bound <= p.patience_s else 0.0
    window = length + backlog_s + MARGIN_S + due
    ctx.phase(f"mended; watching up to {window:.0f} s")
    await asyncio.to_thread(ctx.watch, fault_at + window, probe_id)
    await asyncio.to_thread(ctx.restart_dead)
    cut_s = round(mended_at - cut_at, 1)
    past = f", past the ~{bound:.0f} s redelivery bound" if bound and cut_s > bound else ""
    ctx.notes.append(f"the {side} cut off from {broker} for {cut_s:g} s{past}")
    extra: dict[str, Any] = {"cut_off": side, "cut_s": cut_s}
    if side == "api":
        during = outage_answers([a for a in answers if cut_at <= a[0] <= mended_at], mended_at - cut_at)
        counts = ", ".join(f"{n} x {kind}" for kind, n in during["answers"].items() if n or kind == "hang")
        ctx.notes.append(f"API while cut off: {counts}, slowest {during['max_latency_ms']:.0f} ms")
        extra["outage"] = during
    return {**ctx.tally(fault_at, set(), probe_id, time.time() - fault_at), **extra}
