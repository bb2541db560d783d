"""Two faults about the messages themselves: a delayed job outliving a visibility timeout, and a poison message.

- delay-past-timeout: a few emails enqueued with a delay of twice the runner's visibility timeout (Celery's
  documented pitfall, celery/celery#4766: an ETA task held unacked past the timeout is handed out again and
  runs more than once). Executions are counted per job from the ledger, skipped repeats included.
- poison-message: a message no worker can decode is put on the runner's own queue (only the plugin knows its
  wire format), then a few good emails: does the library log it, take it to its failure path, and keep going?
"""

import asyncio
import time
from pathlib import Path
from typing import Any

from fbt_bench.faults.observe import MARGIN_S, POLL_S, FaultContext, ledger_by_id
from fbt_tasks.backend import DelayUnsupported
from fbt_tasks.jobs import Job


def delay_for(ctx: FaultContext) -> tuple[float, str]:
    """The delay to use and why: 2x the visibility timeout if this pass can wait it out, else ``delay_s``."""
    p = ctx.params
    timeout = ctx.runner.faults.visibility_timeout_s(ctx.described)
    if timeout is None:
        return p.delay_s, "no visibility timeout applies to a delayed message"
    if 2 * timeout <= p.max_delay_s:
        return 2 * timeout, f"2x the {timeout:g} s visibility timeout"
    return p.delay_s, f"2x the {timeout:g} s visibility timeout is longer than this pass waits"


async def delay_past_timeout(ctx: FaultContext) -> dict[str, Any]:
    p = ctx.params
    delay_s, why = delay_for(ctx)
    ctx.phase(f"{p.delayed_n} emails delayed {delay_s:g} s ({why})")
    backend = ctx.runner.backend(ctx.stack.settings)
    began = time.time()
    try:
        for i in range(p.delayed_n):
            job = Job(
                kind="send_email",
                payload={"to": f"delayed{i}@example.com", "subject": "Delayed", "body": "x"},
            )
            job.payload["message_id"] = job.id
            await asyncio.to_thread(backend.enqueue, job, delay_s)
            ctx.accepted.append(job.id)
    except DelayUnsupported as exc:
        # Not a failure of the pass: the runner refuses countdowns as deployed, so nothing can run late.
        ctx.notes.append(f"not applicable: the runner refused the countdown ({exc})")
        return {**ctx.tally(began, set(), None, time.time() - began), "refused_delay": str(exc)}
    finally:
        backend.close()
    # Wait out the delay itself, then watch: a copy handed out again runs when it falls due too.
    await asyncio.to_thread(_sleep_until, ctx, began + delay_s)
    timeout = ctx.runner.faults.visibility_timeout_s(ctx.described) or 0.0
    await asyncio.to_thread(ctx.watch, began + delay_s + min(timeout, p.patience_s) + MARGIN_S, None)
    ctx.notes.append(f"delayed {delay_s:g} s: {why}")
    result = ctx.tally(began, set(), None, time.time() - began)
    runs = ledger_by_id(ctx.stack.ledger_path, set(ctx.accepted))
    counts = [len(runs.get(job_id, [])) for job_id in ctx.accepted]
    result["delay_s"] = delay_s
    result["visibility_timeout_s"] = ctx.runner.faults.visibility_timeout_s(ctx.described)
    result["executions"] = {
        "per_job": counts,
        "min": min(counts, default=0),
        "max": max(counts, default=0),
        "skipped": sum(1 for found in runs.values() for e in found if e.skipped),
    }
    return result


def _sleep_until(ctx: FaultContext, moment: float) -> None:
    while time.time() < moment:
        ctx.check()
        time.sleep(POLL_S)


async def poison_message(ctx: FaultContext) -> dict[str, Any]:
    p, stack = ctx.params, ctx.stack
    log_path = stack.process_log(stack.worker_name)
    log_from = log_path.stat().st_size if log_path.exists() else 0
    marker = await asyncio.to_thread(ctx.runner.faults.inject_malformed, stack.settings)
    ctx.phase(f"malformed message {marker} on the queue, then {p.followers_n} emails")
    began = time.time()
    await asyncio.sleep(2.0)  # let a worker pick it up before the good ones arrive
    await ctx.burst(p.followers_n, "after-poison")
    probe_id = await ctx.probe()
    await asyncio.to_thread(ctx.watch, began + p.patience_s / 2, probe_id)
    await asyncio.to_thread(ctx.restart_dead)
    result = ctx.tally(began, set(), probe_id, time.time() - began)
    where = await asyncio.to_thread(ctx.runner.faults.malformed_whereabouts, stack.settings, marker)
    line = log_line(log_path, log_from, marker)
    result["poison"] = {
        "marker": marker,
        "where": where,
        "log_line": line,
        "worker_kept_working": result["completed"] == result["expected"] and result["expected"] > 0,
    }
    ctx.notes.append(f"malformed message: {where}; logged: {line or 'nothing found in the worker log'}")
    return result


def log_line(path: Path, offset: int, marker: str) -> str | None:
    """The worker log's first error line since ``offset`` (one naming the marker first), else a marker line."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            fh.seek(offset)
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return None

    def erring(line: str) -> bool:
        return any(word in line.lower() for word in ("error", "critical", "exception"))

    found = (
        next((line for line in lines if marker in line and erring(line)), None)
        or next((line for line in lines if erring(line)), None)
        or next((line for line in lines if marker in line), None)
    )
    return found.strip()[:300] if found else None
