"""burst: more email than a runner can send, for a few seconds, then nothing but the /health probe.

Emails are offered open loop at ``burst_factor`` times the ideal throughput (slots / SMTP delay) for
``burst_s``, so a backlog must build somewhere: in the broker (a queue) or in the API's memory (tasks that
run in the API). At the end of the burst the harness asks the broker what it holds of the accepted jobs
(``FaultModel.holdings``); what was accepted, not yet done and not in the broker is in the API. GET /health
is probed throughout, burst and recovery, for the API's tail while it carries the load; the API's peak
memory comes from the resource sampler; recovery runs from the end of the burst to the last burst email
completed in the ledger.
"""

import asyncio
import time
from typing import Any

from fbt_bench.measuring import stats
from fbt_bench.measuring.openloop import run_open_loop_async
from fbt_bench.scenarios.bursts import email_rate
from fbt_bench.scenarios.context import ScenarioContext, drain, open_loop_warnings
from fbt_bench.scenarios.mixed import routes
from fbt_bench.scenarios.record import Measured
from fbt_tasks.registry import installed_runners, load_runner
from fbt_tasks.runner import pending


def backlog_where(accepted: int, completed: int, in_broker: int) -> dict[str, int]:
    """Split what was accepted and not yet done between the broker and the API's memory."""
    backlog = max(accepted - completed, 0)
    broker = min(in_broker, backlog)
    return {"backlog": backlog, "in_broker": broker, "in_api": backlog - broker}


async def burst(ctx: ScenarioContext) -> dict[str, Any]:
    p = ctx.profile
    ideal = email_rate(ctx) / p.email_offered_factor
    rate = round(p.burst_factor * ideal, 1)
    path, body = routes(ctx)["send_email"]
    follower = ctx.follower()
    stop = asyncio.Event()
    probe = ctx.spec(max(p.probe_rate_hz, 100.0), p.drain_timeout_s, method="GET", path="/health", body="")
    ctx.progress.phase(
        f"{ctx.tag('burst')}: {rate:g} emails/s for {p.burst_s:g} s ({p.burst_factor:g}x ideal)"
    )
    with ctx.sampler() as sampler:
        probing = asyncio.create_task(run_open_loop_async(probe, stop))
        try:
            sent = await ctx.open_loop(ctx.spec(rate, p.burst_s, path=path, body=body))
            ended = time.time()
            ids = sent.ok_job_ids()
            follower.expect(ids)
            # The broker first, the ledger second: a job finished in between then counts as done, never as
            # missing from the broker (which would put it in the API's memory).
            in_broker = await asyncio.to_thread(_in_broker, ctx, set(ids))
            follower.poll()
            done_at_peak = follower.completed_count()
            await drain(ctx, follower, len(ids), f"{ctx.tag('burst')} recovered")
        finally:
            stop.set()
            probed = await probing
        resources = sampler.stop()
    # A request the API refused never became a task: it is counted apart, not as a task lost.
    tally = follower.tally(expected=len(ids))
    health = stats.summarize_ms(lat * 1000.0 for lat in probed.ok_latencies_s())
    api = resources.get("api")
    extra = {
        "offered_rate": rate,
        "ideal_throughput_per_s": round(ideal, 2),
        "burst_s": p.burst_s,
        "accepted": len(ids),
        "refused": sent.planned - len(ids),
        "at_peak": backlog_where(len(ids), done_at_peak, in_broker),
        "recovery_s": round(tally.last_finished_at - ended, 2) if tally.last_finished_at else None,
        "health_ms": health,
        "peak_api_pss_mb": round(api["peak_pss_mb"], 1) if api else None,
        # "kill" and "deploy" join after the run's fault pass (attach_crash_outcomes).
    }
    measured = Measured(
        tally=tally,
        duration_s=tally.span_s,
        resources=resources,
        loadgen_cpu_us_per_request=sent.cpu_us_per_request,
        loadgen_core_share=sent.core_share,
        client_latency_ms=stats.summarize_ms(lat * 1000.0 for lat in sent.ok_latencies_s()),
        extra=extra,
        warnings=open_loop_warnings("burst", sent) + open_loop_warnings("probe", probed),
    )
    return ctx.record("burst", measured)


def _in_broker(ctx: ScenarioContext, ids: set[str]) -> int:
    """How many of ``ids`` the broker holds (queued, held or scheduled); 0 where tasks run in the API."""
    if ctx.deployment.runs_in_api or ctx.runner not in installed_runners():
        return 0
    return pending(load_runner(ctx.runner).faults.holdings(ctx.deployment.settings, ids))


# The fault pass's cells whose outcomes a burst record carries: what a crash and a deploy in the middle of a
# backlog cost the same runner on the same broker, in the configuration the scenarios ran.
CRASH_KEYS = {"kill": "kill-worker", "deploy": "deploy"}
OUTCOME_FIELDS = ("expected", "lost", "held", "reexecuted", "duplicate_effects", "in_flight_at_fault")


def attach_crash_outcomes(records: list[dict[str, Any]], faults: list[dict[str, Any]]) -> None:
    """Give each burst record ``extra.kill`` and ``extra.deploy``: the run's fault-pass cell for its runner,
    broker and queue config (SIGKILL, or SIGTERM with the grace period, mid-burst), summed over its trials,
    or None where the pass did not measure that cell."""
    for record in records:
        if record["scenario"] != "burst":
            continue
        for key, fault in CRASH_KEYS.items():
            cells = [
                f
                for f in faults
                if f["fault"] == fault
                and f["runner"] == record["runner"]
                and f.get("broker") == record.get("broker")
                and f["config"] == record["config"]
                and not f.get("error")
            ]
            record["extra"][key] = (
                {
                    **{name: sum(int(c.get(name) or 0) for c in cells) for name in OUTCOME_FIELDS},
                    "trials": len(cells),
                    "watch_covers_bound": all(c.get("watch_covers_bound") is not False for c in cells),
                }
                if cells
                else None
            )
