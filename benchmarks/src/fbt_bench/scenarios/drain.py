"""drain: N write_log jobs pre-filled through the runner's own client with its workers stopped (no HTTP),
then the workers started; throughput = completions / (last ledger completion - first ledger completion).

This is how the peers measure a queue's worker path (python_queue_benchmark: 20,000 jobs). A runner whose
tasks run in the API has no queue to pre-fill and no drain record: its backlog would live in the API's
memory and arrive no faster than the API accepts, so accept is its capacity.
"""

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from fbt_bench.measuring.ledger_reader import LedgerTally
from fbt_bench.measuring.sampler import ProcUsage
from fbt_bench.scenarios.context import ScenarioContext, drain, warm_up
from fbt_bench.scenarios.draining import Ready, draining
from fbt_bench.scenarios.paired import MIN_IN_WINDOW, paired_drain, paired_n
from fbt_bench.scenarios.probe_client import run_probe
from fbt_bench.scenarios.record import Measured, cpu_us_per_task, make_record
from fbt_bench.scenarios.reference import ReferenceDrain, fidelity, reference_drain
from fbt_tasks.reference import JSONValue, Reference
from fbt_tasks.registry import installed_runners, load_runner


async def drain_scenario(ctx: ScenarioContext) -> list[dict[str, Any]]:
    if ctx.deployment.runs_in_api:
        # No queue to pre-fill: a backlog of tasks that run in the API lives in the API's memory and arrives
        # no faster than the API accepts it, so accept is such a runner's capacity (steady takes it alone).
        return []
    record = await _with_reference(ctx, ctx.profile.drain_n)
    if record["throughput_per_s"] > 0:
        # steady's other input beside the accept knee. The first drain of a repeat is kept: across RTTs
        # (longest first) steady then offers each the same load.
        ctx.capacity().setdefault("drain", float(record["throughput_per_s"]))
    return [record]


async def _with_reference(ctx: ScenarioContext, n: int) -> dict[str, Any]:
    """The runner's drain alone and, where it has a fidelity reference, the paired drain beside its
    library's own minimal worker (``paired``), which gives ``extra.fidelity``.

    Where the queue config adds job-status writes, the reference also drains alone with and without them,
    so the configuration table shows what they cost the library. The reference runs on the local topology
    only (its workers are started here, beside the broker).
    """
    record = await _through_queue(ctx, n)
    reference = _reference(ctx)
    if reference is None:
        return record
    pair = await paired_drain(ctx, reference, paired_n(record["throughput_per_s"], ctx.profile.fidelity_s))
    extra = record["extra"]
    extra["reference"] = pair.as_record()
    extra["reference_per_s"] = pair.reference_per_s
    extra["fidelity"] = pair.fidelity
    extra["cpu_fidelity"] = pair.cpu_fidelity
    if pair.fidelity is None:
        record["warnings"].append(
            f"paired drain: the two sides never drained at the same time for {MIN_IN_WINDOW} jobs each "
            "after their start-up, so no fidelity ratio"
        )
    if (
        (pair.completed, pair.project_completed) != (pair.n, pair.n)
        or pair.duplicated
        or pair.project_duplicated
    ):
        record["warnings"].append(
            f"paired drain: the library's own worker completed {pair.completed} of {pair.n} ({pair.duplicated} "
            f"twice), the runner's {pair.project_completed} of {pair.n} ({pair.project_duplicated} twice)"
        )
    if reference.without_status_writes is not None:
        with_writes, without = await _status_write_drains(ctx, reference, n)
        extra["status_writes"] = status_writes_cost(with_writes, without)
        for what, drained in (("reference with", with_writes), ("reference without", without)):
            if drained.completed != n or drained.duplicated:
                record["warnings"].append(
                    f"{what} the job-status writes: {drained.completed} of {n} jobs completed, "
                    f"{drained.duplicated} twice"
                )
    return record


def status_writes_cost(with_writes: ReferenceDrain, without: ReferenceDrain) -> dict[str, Any]:
    """What the queue config's job-status writes cost the library's own worker: drained/s with them over
    without them, and CPU µs per task both ways (the draining window's, every group)."""

    def total(drained: ReferenceDrain) -> float | None:
        return (drained.cpu_us_per_task or {}).get("total")

    return {
        "reference_per_s_without": without.drained_per_s,
        "drained_ratio": fidelity(with_writes.drained_per_s, without.drained_per_s),
        "cpu_us_per_task_with": total(with_writes),
        "cpu_us_per_task_without": total(without),
        "options_without": without.options,
    }


def _reference(ctx: ScenarioContext) -> Reference | None:
    if (
        not ctx.profile.fidelity
        or ctx.deployment.topology != "local"
        or ctx.runner not in installed_runners()
    ):
        return None
    return load_runner(ctx.runner).reference(ctx.deployment.settings)


async def _status_write_drains(
    ctx: ScenarioContext, reference: Reference, n: int
) -> tuple[ReferenceDrain, ReferenceDrain]:
    """The reference alone with the queue config's job-status writes and without them (its workers only)."""
    assert reference.without_status_writes is not None
    label = f"{ctx.tag('drain')} reference"
    broker = [pid for group in ctx.deployment.groups() if group.name == "broker" for pid in group.roots]
    workdir = ctx.deployment.ledger_path.parent / "reference"
    ctx.deployment.stop_workers()

    async def one(options: Mapping[str, JSONValue] | None, what: str) -> ReferenceDrain:
        ctx.progress.phase(f"{label}: the library's own worker ({reference.layout}){what}, {n} jobs")
        return await asyncio.to_thread(
            reference_drain,
            reference,
            ctx.deployment.settings,
            workdir,
            n,
            broker_pids=broker,
            drain_timeout_s=ctx.profile.drain_timeout_s,
            stall_timeout_s=ctx.profile.stall_timeout_s,
            options=options,
        )

    try:
        return await one(None, ""), await one(
            reference.without_status_writes, " without the job-status writes"
        )
    finally:
        await asyncio.to_thread(ctx.deployment.start_workers)
        # The restarted workers' start-up must not land in the next scenario's window.
        await warm_up(ctx)


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
    with ctx.sampler() as sampler:
        started = time.time()
        ctx.progress.phase(f"{ctx.tag('drain')}: starting the workers")
        await asyncio.to_thread(ctx.deployment.start_workers)
        # The workers reported ready (the runner's own check, as compose's healthcheck asks it): CPU from
        # here on is the draining alone; what came before is their start-up, reported apart.
        follower.poll()
        ready = Ready(follower.completed_count(), time.monotonic(), sampler.snapshot())
        tally = await drain(ctx, follower, n, f"{ctx.tag('drain')} drained")
        resources = sampler.stop()
        ended = time.monotonic()
    window = draining(ready, ended, resources, tally.completed)
    extra: dict[str, Any] = {
        "prefill_cpu_us_per_enqueue": round(float(filled["cpu_us_per_enqueue"]), 1),
        "draining": window.as_record() if window else None,
        "startup_cpu_s": round(sum(usage["cpu_s"] for usage in ready.usage.values()), 3),
        "cpu_us_per_task_with_startup": cpu_us_per_task(resources, tally.completed),
    }
    if window is not None:
        # CPU per task over the draining window only, the tasks completed in it (the record's headline cost).
        return drain_record(
            ctx.runner,
            ctx.repeat,
            ctx.config,
            ctx.broker,
            n,
            tally,
            window.usage,
            started,
            extra,
            window.tasks,
        )
    return drain_record(ctx.runner, ctx.repeat, ctx.config, ctx.broker, n, tally, resources, started, extra)


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
    cost_tasks: int | None = None,
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
        cost_tasks=cost_tasks,
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
