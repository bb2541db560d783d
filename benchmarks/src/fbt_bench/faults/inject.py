"""The faults, each injected mid-burst into a running cell and measured by ``FaultContext``.

Which sentence explains the outcome, and how long a configuration takes to redeliver, is the runner's own
knowledge (``FaultModel``); here only the injection and the timing of the watch.
"""

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any, cast

from fbt_bench.faults.crash import broker_crash
from fbt_bench.faults.full import broker_full
from fbt_bench.faults.messages import delay_past_timeout, poison_message
from fbt_bench.faults.observe import POLL_S, FaultContext, leased_ids, ledger_by_id, watch_window
from fbt_bench.faults.outage import outage_answers, outage_probe
from fbt_bench.faults.partition import partition
from fbt_bench.faults.redeploy import api_deploy
from fbt_bench.faults.slowlink import slow_link
from fbt_bench.measuring.api_client import RequestError
from fbt_devstack.smtp_sink import read_mailbox
from fbt_tasks.runner import FaultName, Holdings, pending

# task-error's always-refused recipient, and how long to follow it once the other emails went through.
POISON_PREFIX = "poison"
POISON_WAIT_S = 30.0


async def kill_worker(ctx: FaultContext) -> dict[str, Any]:
    """SIGKILL the worker's whole tree mid-burst, then start it again."""
    return await _interrupt_burst(ctx, signal.SIGKILL)


async def deploy(ctx: FaultContext) -> dict[str, Any]:
    """SIGTERM mid-burst like a rolling deploy; SIGKILL only once compose's grace period ran out."""
    return await _interrupt_burst(ctx, signal.SIGTERM)


async def _interrupt_burst(ctx: FaultContext, sig: int) -> dict[str, Any]:
    p, stack = ctx.params, ctx.stack
    sending = asyncio.create_task(ctx.burst(p.n, "fault"))
    await asyncio.to_thread(lambda: ctx.wait_for_deliveries(p.fault_after, in_flight=True))
    ctx.phase(f"{signal.Signals(sig).name} to {stack.worker_name} after {p.fault_after} deliveries")
    fault_at = time.time()
    await asyncio.to_thread(stack.kill_workers, sig)
    extra = await _shut_down(ctx, fault_at) if sig == signal.SIGTERM else {}
    client = ctx.redis_client()
    try:
        # The old tree is gone: a lease still held belongs to an attempt that was cut off mid-send.
        leased, lease_left_s = leased_ids(client)
    finally:
        client.close()
    restarted = time.time()
    await asyncio.to_thread(stack.restart_workers)
    extra["restart_s"] = round(time.time() - restarted, 2)
    await sending
    probe_id = await ctx.probe()
    backlog_s = p.n * p.smtp_delay_ms / 1000 / p.slots
    bound = ctx.runner.faults.redelivery_bound_s(ctx.described)
    grace = p.deploy_grace_s if sig == signal.SIGTERM else 0.0
    window, why = watch_window(bound, lease_left_s, backlog_s + grace + extra["restart_s"], p)
    ctx.phase(f"watching up to {window:.0f} s ({why})")
    await asyncio.to_thread(ctx.watch, fault_at + window, probe_id)
    ctx.notes.append(f"watched {time.time() - fault_at:.0f} s ({why})")
    return {**ctx.tally(fault_at, leased, probe_id, time.time() - fault_at), **extra}


async def _shut_down(ctx: FaultContext, fault_at: float) -> dict[str, Any]:
    """After SIGTERM: wait out the grace period for a graceful exit, else SIGKILL as compose would."""
    exited = await asyncio.to_thread(_wait_exit, ctx, ctx.params.deploy_grace_s)
    extra: dict[str, Any] = {
        "graceful": exited,
        "shutdown_s": round(time.time() - fault_at, 2) if exited else None,
    }
    if exited:
        ctx.notes.append(f"graceful shutdown in {extra['shutdown_s']:g} s")
    else:
        ctx.notes.append(f"SIGKILLed after the {ctx.params.deploy_grace_s:.0f} s grace period")
        await asyncio.to_thread(ctx.stack.kill_workers, signal.SIGKILL)
    return extra


def _wait_exit(ctx: FaultContext, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while ctx.stack.worker_name not in ctx.stack.failed():
        ctx.check()
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


async def broker_restart(ctx: FaultContext) -> dict[str, Any]:
    """Stop the deployment's broker mid-burst (gracefully: Redis flushes its AOF, RabbitMQ its queues), keep
    it down ``outage_s``, start it again."""
    p, stack = ctx.params, ctx.stack
    sending = asyncio.create_task(ctx.burst(p.n, "fault"))
    await asyncio.to_thread(lambda: ctx.wait_for_deliveries(p.fault_after, in_flight=True))
    ctx.phase(
        f"stopping the {stack.settings.broker_name} broker for {p.outage_s:g} s after {p.fault_after} deliveries"
    )
    fault_at = time.time()
    back = asyncio.Event()
    # The probe runs until the broker is back: a RabbitMQ node takes seconds to stop and to boot again.
    probing = asyncio.create_task(outage_probe(ctx, back))
    await asyncio.to_thread(stack.stop_broker)
    down_at = time.time()
    await asyncio.sleep(p.outage_s)
    await asyncio.to_thread(stack.start_broker)
    up_at = time.time()
    back.set()
    answers = await probing
    await sending
    await asyncio.to_thread(ctx.restart_dead)
    probe_id = await ctx.probe()
    window = p.outage_s + p.n * p.smtp_delay_ms / 1000 / p.slots + p.patience_s / 2
    await asyncio.to_thread(ctx.watch, fault_at + window, probe_id)
    await asyncio.to_thread(ctx.restart_dead)
    outage = outage_answers([a for a in answers if down_at <= a[0] <= up_at], up_at - down_at)
    counts = ", ".join(f"{n} x {kind}" for kind, n in outage["answers"].items() if n or kind == "hang")
    slowest = outage["max_latency_ms"]
    ctx.notes.append(f"API during the {outage['down_s']:.0f} s outage: {counts}, slowest {slowest:.0f} ms")
    return {**ctx.tally(fault_at, set(), probe_id, time.time() - fault_at), "outage": outage}


async def task_error(ctx: FaultContext) -> dict[str, Any]:
    """Emails the sink refuses ``fail_first`` times each, then accepts: are they retried, is it visible?

    One more email goes to a recipient the sink always refuses: where does a job that exhausts its retries go?
    """
    p = ctx.params
    began = time.time()
    ctx.phase(f"{p.error_n} emails refused {p.fail_first}x each, and one refused always")
    poison = await ctx.burst(1, POISON_PREFIX, counted=False)
    await ctx.burst(p.error_n, "flaky")
    await asyncio.to_thread(ctx.watch, began + p.patience_s, None)
    result = ctx.tally(began, set(), None, time.time() - began)
    delivered = [m.received_at for m in read_mailbox(ctx.sink.mailbox)[ctx.mail_from :]]
    result["recovery_s"] = round(max(delivered) - began, 2) if delivered else None
    result["job_states"] = await job_states(ctx, ctx.accepted)
    states = ", ".join(f"{n} {state}" for state, n in result["job_states"].items())
    ctx.notes.append(f"{result['failed_attempts']} failed attempts in the ledger; /jobs: {states}")
    if poison.job_ids:
        result["exhausted"] = await exhausted_job(ctx, poison.job_ids[0])
    return result


async def exhausted_job(ctx: FaultContext, job_id: str) -> dict[str, Any]:
    """Follow the always-refused job until it leaves the queue (or ``POISON_WAIT_S``): where did it end up?"""
    deadline = time.monotonic() + min(ctx.params.watch_s, POISON_WAIT_S)
    while True:
        ctx.check()
        where = await asyncio.to_thread(ctx.holdings, {job_id})
        if not where or pending(cast(Holdings, where)) == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(POLL_S * 5)
    attempts = len(ledger_by_id(ctx.stack.ledger_path, {job_id}).get(job_id, []))
    state = await job_states(ctx, [job_id])
    found = [name for name, count in where.items() if count] or ["dropped"]
    kept_in = ctx.runner.faults.exhausted_to
    ctx.notes.append(
        f"an always-refused email: {attempts} attempts, then {', '.join(found)} (kept in: {kept_in})"
    )
    return {"attempts": attempts, "where": where, "api_state": next(iter(state), None), "kept_in": kept_in}


async def job_states(ctx: FaultContext, job_ids: list[str]) -> dict[str, int]:
    """What GET /jobs/{id} answers for these jobs: is a failure visible through the API?"""
    states: Counter[str] = Counter()
    async with ctx.client(connections=1) as client:
        for job_id in job_ids:
            try:
                states[await client.job_state(job_id)] += 1
            except (RequestError, ValueError, KeyError):
                states["error"] += 1
    return dict(states)


FAULT_RUNS: dict[FaultName, Callable[[FaultContext], Coroutine[Any, Any, dict[str, Any]]]] = {
    "kill-worker": kill_worker,
    "deploy": deploy,
    "api-deploy": api_deploy,
    "broker-restart": broker_restart,
    "task-error": task_error,
    "broker-crash": broker_crash,
    "broker-full": broker_full,
    "partition": partition,
    "slow-link": slow_link,
    "delay-past-timeout": delay_past_timeout,
    "poison-message": poison_message,
}
