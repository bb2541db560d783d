"""slow-link: the broker's link turns lossy and jittery during a drain: how fast work still drains, and
whether anything is lost or runs twice.

The cell runs on the hosts topology with the delay relay in front of Redis (``fbt_devstack.delay_proxy``), so
the API's enqueues and the workers' fetches, acks and heartbeats all cross the impaired link. Kernels here
have no sch_netem, so the relay emulates what loss does to a TCP application: while impaired, a share of
chunks (``slow_loss_pct``) arrives one retransmission timeout late, holding back the bytes behind it, and every
chunk up to ``slow_jitter_ms`` late. The record says so (``impairment``).

A trial drains ``slow_n`` emails on the clean link, then as many again on the impaired one, on the same stack,
so the two rates are measured on the same path minutes apart: the ratio is the link's cost. Then the
accepted jobs of both drains are watched and counted as after any fault.
"""

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from fbt_bench.faults.observe import MARGIN_S, QUIET_S, FaultContext, deliveries, job_id_of
from fbt_devstack.smtp_sink import read_mailbox

# How long a drain may take before the trial moves on: what is missing then is counted by the watch.
DRAIN_LIMIT_S = 120.0


def impairment_words(impairment: Mapping[str, Any] | None) -> str | None:
    """A slow-link record's ``impairment`` in words, for its notes and its runner's sentence."""
    if not impairment:
        return None
    return (
        f"{impairment['loss_pct']:g}% of chunks held {impairment['stall_ms']:g} ms, jitter up to "
        f"{impairment['jitter_ms']:g} ms ({'emulated in a relay' if impairment['method'] == 'relay' else 'netem'})"
    )


def _drained(ctx: FaultContext, ids: list[str], began: float) -> tuple[int, float]:
    """Wait until every one of ``ids`` was delivered, or nothing arrived for QUIET_S; (delivered, per s)."""
    wanted, deadline = set(ids), time.monotonic() + DRAIN_LIMIT_S
    last_count, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        ctx.check()
        count = sum(1 for job_id in deliveries(ctx.sink.mailbox) if job_id in wanted)
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        if count == len(wanted) or time.monotonic() - last_change >= QUIET_S:
            break
        time.sleep(0.05)
    mails = [m for m in read_mailbox(ctx.sink.mailbox) if job_id_of(m.message_id) in wanted]
    if not mails:
        return 0, 0.0
    last = max(m.received_at for m in mails)
    delivered = len({m.message_id for m in mails})
    return delivered, delivered / max(last - began, 1e-6)


async def _drain(ctx: FaultContext, label: str) -> tuple[int, int, float]:
    """Send ``slow_n`` emails and wait for them: (accepted, delivered, delivered per s from the first send)."""
    began = time.time()
    sent = await ctx.burst(ctx.params.slow_n, label)
    delivered, per_s = await asyncio.to_thread(_drained, ctx, sent.job_ids, began)
    return len(sent.job_ids), delivered, per_s


async def slow_link(ctx: FaultContext) -> dict[str, Any]:
    """Drain on the clean link, then on the impaired one; watch every accepted job."""
    p, stack = ctx.params, ctx.stack
    ctx.phase(f"draining {p.slow_n} emails on the clean link")
    clean = await _drain(ctx, "clean")
    impaired = {
        "method": "relay",
        "loss_pct": p.slow_loss_pct,
        "stall_ms": p.slow_stall_ms,
        "jitter_ms": p.slow_jitter_ms,
    }
    impairment = impairment_words(impaired)
    ctx.phase(f"draining {p.slow_n} emails on the impaired link ({impairment})")
    fault_at = time.time()
    await asyncio.to_thread(stack.impair_broker_link, True)
    try:
        slow = await _drain(ctx, "slow")
    finally:
        await asyncio.to_thread(stack.impair_broker_link, False)
    await asyncio.to_thread(ctx.restart_dead)
    probe_id = await ctx.probe()
    bound = ctx.runner.faults.redelivery_bound_s(ctx.described)
    due = bound if bound is not None and bound <= p.patience_s else 0.0
    await asyncio.to_thread(ctx.watch, time.time() + MARGIN_S + due, probe_id)
    ratio = slow[2] / clean[2] if clean[2] else None
    ctx.notes.append(
        f"drained {clean[2]:.1f}/s on the clean link ({clean[1]} of {clean[0]}), {slow[2]:.1f}/s impaired "
        f"({slow[1]} of {slow[0]}; {impairment})"
    )
    return {
        **ctx.tally(fault_at, set(), probe_id, time.time() - fault_at),
        "throughput": {
            "clean_per_s": round(clean[2], 2),
            "slow_per_s": round(slow[2], 2),
            "ratio": round(ratio, 3) if ratio is not None else None,
            "n": p.slow_n,
        },
        "impairment": impaired,
    }
