"""drain: N write_log jobs pre-filled through the runner's own client with its workers stopped (no HTTP),
then the workers started; throughput = completions / (last ledger completion - first ledger completion).

This is how the peers measure a queue's worker path (python_queue_benchmark: 20,000 jobs). A runner whose
tasks run in the API's threadpool has no queue to pre-fill: the same N jobs are added through its backend
to real Starlette BackgroundTasks and run on a threadpool of ``slots`` tokens in a process of its own, no
HTTP; the record's ``notes`` say so.
"""

import asyncio
import os
import time
from typing import Any

from fbt_bench.measuring.ledger_reader import LedgerFollower, LedgerTally
from fbt_bench.measuring.sampler import ProcSet, ProcUsage, ResourceSampler
from fbt_bench.scenarios.context import ScenarioContext, drain
from fbt_bench.scenarios.probe_client import run_probe
from fbt_bench.scenarios.record import Measured, cpu_us_per_task, make_record

IN_API_NOTE = (
    "tasks run in the API's threadpool, so there is no queue to pre-fill: the same N jobs were added through "
    "the runner's backend to real Starlette BackgroundTasks and run on a threadpool of `slots` tokens in a "
    "process of its own (counted as workers), no HTTP"
)


async def drain_scenario(ctx: ScenarioContext) -> dict[str, Any]:
    n = ctx.profile.drain_n
    record = await (_in_threadpool(ctx, n) if ctx.deployment.runs_in_api else _through_queue(ctx, n))
    if record["throughput_per_s"] > 0:
        # steady's other input beside the accept knee. The first drain of a repeat is kept: across RTTs
        # (longest first) steady then offers each the same load.
        ctx.capacity().setdefault("drain", float(record["throughput_per_s"]))
    return record


async def _through_queue(ctx: ScenarioContext, n: int) -> dict[str, Any]:
    follower = ctx.follower()
    ctx.progress.phase(f"{ctx.tag('drain')}: stopping the workers, pre-filling {n} jobs")
    ctx.deployment.stop_workers()
    try:
        filled = await run_probe(ctx.deployment, ["enqueue", "--n", str(n), "--ids"])
    except BaseException:
        ctx.deployment.start_workers()
        raise
    follower.expect(filled["ids"])
    # The usage when the first completions were seen: what came after is the draining alone, without the
    # workers' start (which the record's own CPU per task includes).
    first: list[tuple[int, float, dict[str, ProcUsage]]] = []

    def at_first(done: int) -> None:
        if done and not first:
            first.append((done, time.monotonic(), sampler.snapshot()))

    with ctx.sampler() as sampler:
        started = time.time()
        ctx.progress.phase(f"{ctx.tag('drain')}: starting the workers")
        await asyncio.to_thread(ctx.deployment.start_workers)
        tally = await drain(ctx, follower, n, f"{ctx.tag('drain')} drained", on_progress=at_first)
        resources = sampler.stop()
        ended = time.monotonic()
    extra: dict[str, Any] = {
        "prefill_cpu_us_per_enqueue": round(float(filled["cpu_us_per_enqueue"]), 1),
        "draining": draining(first[0] if first else None, ended, resources, tally.completed),
    }
    return drain_record(ctx.runner, ctx.repeat, ctx.config, ctx.broker, n, tally, resources, started, extra)


def draining(
    first: tuple[int, float, dict[str, ProcUsage]] | None,
    ended: float,
    end: dict[str, ProcUsage],
    completed: int,
) -> dict[str, Any] | None:
    """From the first completions seen to the end: the seconds, every group's CPU, and CPU µs per task of the
    tasks completed in between (the workers' start left out); None when nothing completed after that look."""
    if first is None or completed <= first[0]:
        return None
    done, at_s, at = first
    between = {
        group: ProcUsage(
            cpu_s=max(usage["cpu_s"] - at[group]["cpu_s"], 0.0),
            peak_pss_mb=usage["peak_pss_mb"],
            peak_rss_mb=usage["peak_rss_mb"],
            processes=usage["processes"],
        )
        for group, usage in end.items()
        if group in at
    }
    return {
        "after_completed": done,
        "seconds": round(max(ended - at_s, 0.0), 3),
        "cpu_s": round(sum(usage["cpu_s"] for usage in between.values()), 3),
        "cpu_us_per_task": cpu_us_per_task(between, completed - done),
    }


async def _in_threadpool(ctx: ScenarioContext, n: int) -> dict[str, Any]:
    # Every event appended from here on is one of ours: the idle API writes none.
    path = ctx.deployment.ledger_path
    follower = LedgerFollower(path, os.path.getsize(path) if path.exists() else 0, track_all=True)
    pids: list[int] = []
    groups = lambda: [*ctx.deployment.groups(), ProcSet("workers", list(pids))]  # noqa: E731
    ctx.progress.phase(f"{ctx.tag('drain')}: {n} jobs on a {ctx.profile.slots}-token threadpool, no HTTP")
    with ResourceSampler(groups) as sampler:
        started = time.time()
        await run_probe(
            ctx.deployment,
            ["run-in-threadpool", "--n", str(n), "--slots", str(ctx.profile.slots)],
            on_start=pids.append,
        )
        resources = sampler.stop()
    await asyncio.to_thread(follower.poll)  # the process has exited: every event it wrote is on disk
    tally = follower.tally(expected=n)
    return drain_record(
        ctx.runner, ctx.repeat, ctx.config, ctx.broker, n, tally, resources, started, {"notes": IN_API_NOTE}
    )


def drain_record(
    runner: str,
    repeat: int,
    config: str,
    broker: str,
    n: int,
    tally: LedgerTally,
    resources: dict[str, ProcUsage],
    started: float,
    extra: dict[str, Any],
) -> dict[str, Any]:
    first, last = tally.first_finished_at, tally.last_finished_at
    span = max(last - first, 0.0) if first is not None and last is not None else 0.0
    drained = tally.completed / span if span > 0 else 0.0
    measured = Measured(
        tally=tally,
        duration_s=span,
        resources=resources,
        rate_word="drained",
        throughput_per_s=drained,
        extra={
            "n": n,
            "drained_per_s": round(drained, 2),
            "first_to_last_s": round(span, 3),
            "start_to_first_s": round(first - started, 3) if first is not None else None,
            **extra,
        },
    )
    return make_record(
        runner=runner, scenario="drain", repeat=repeat, config=config, broker=broker, measured=measured
    )
