"""cpu-heavy: image resizes while a probe hits GET /health at a fixed rate: the API's p99 idle vs loaded.

The probe is the open-loop generator (its own process, timed from the intended send); the resizes are a
closed-loop burst from the harness, whose CPU per request is recorded too. A p99 needs at least 100
probes: when the loaded window gives fewer, the record says so and ``probes_enough_for_p99`` is false
(the report prints the max instead).
"""

import asyncio
import time
from typing import Any

from fbt_bench.measuring import loadgen, stats
from fbt_bench.measuring.openloop import OpenLoopResult, OpenLoopSpec, run_open_loop_async
from fbt_bench.profiles import Profile
from fbt_bench.scenarios.context import (
    ScenarioContext,
    drain,
    finish_window,
    open_loop_warnings,
    send_warnings,
)
from fbt_bench.scenarios.record import Measured, loadgen_us, make_record

MAX_TIMESERIES_POINTS = 400
MIN_P99_PROBES = 100


async def cpu_heavy(ctx: ScenarioContext) -> dict[str, Any]:
    p = ctx.profile
    follower = ctx.follower()
    probe = {"method": "GET", "path": "/health", "body": ""}
    ctx.progress.phase(f"{ctx.tag('cpu-heavy')}: probing GET /health idle for {p.probe_idle_s:g} s")
    idle = await ctx.open_loop(ctx.spec(p.probe_rate_hz, p.probe_idle_s, **probe))
    ctx.progress.phase(f"{ctx.tag('cpu-heavy')}: {p.cpu_n} resizes while probing")
    async with ctx.client() as client:
        with ctx.sampler() as sampler:
            stop = asyncio.Event()
            began_wall = time.time()
            probe_task = asyncio.create_task(
                _probe_until(ctx, stop, ctx.spec(p.probe_rate_hz, p.drain_timeout_s, **probe))
            )
            try:
                sent = await loadgen.burst(
                    lambda i: client.resize(
                        p.image_width, p.image_height, 320, 180, seed=ctx.seed % 2**31 + i
                    ),
                    p.cpu_n,
                    p.burst_concurrency,
                )
                follower.expect(sent.job_ids)
                await drain(ctx, follower, len(sent.job_ids), f"{ctx.tag('cpu-heavy')} resized")
            finally:
                stop.set()
                loaded = await probe_task
            resources = sampler.stop()
    tally = follower.tally(expected=p.cpu_n)
    extra = _probe_extra(p, idle, loaded)
    warnings = send_warnings("resize", sent.sent, sent.errors, sent.error_samples)
    warnings += open_loop_warnings("probe", loaded)
    if not extra["probes_enough_for_p99"]:
        warnings.append(
            f"{extra['probe_loaded_ms']['n']} probes under load, fewer than {MIN_P99_PROBES}: p99 is the max"
        )
    measured = Measured(
        tally=tally,
        duration_s=finish_window(tally, began_wall),
        resources=resources,
        # The harness sent the resizes (closed loop): its CPU is not a load generator's; the probe generator's
        # own CPU is in the probe summary's extra.
        loadgen_cpu_us_per_request=None,
        client_latency_ms=stats.summarize_ms(sent.latencies_ms),
        extra={**extra, "harness_cpu_us_per_request": loadgen_us(resources, sent.sent)},
        warnings=warnings,
    )
    return make_record(
        runner=ctx.runner,
        scenario="cpu-heavy",
        repeat=ctx.repeat,
        config=ctx.config,
        broker=ctx.broker,
        measured=measured,
    )


async def _probe_until(ctx: ScenarioContext, stop: asyncio.Event, spec: OpenLoopSpec) -> OpenLoopResult:
    return await run_open_loop_async(spec, stop)


def _probe_extra(p: Profile, idle: OpenLoopResult, loaded: OpenLoopResult) -> dict[str, Any]:
    """The /health probe idle and under load: summaries, the loaded time series, their ratio."""
    idle_summary = stats.summarize_ms(lat * 1000.0 for lat in idle.ok_latencies_s())
    loaded_summary = stats.summarize_ms(lat * 1000.0 for lat in loaded.ok_latencies_s())
    series = [
        [round(t, 3), round(lat * 1000.0, 3)]
        for t, lat, st in zip(loaded.intended_s, loaded.latency_s, loaded.status, strict=True)
        if 200 <= st < 300
    ]
    return {
        "probe_idle_ms": idle_summary,
        "probe_loaded_ms": loaded_summary,
        "probe_timeseries": stats.downsample(sorted(series), MAX_TIMESERIES_POINTS) if series else [],
        "interference_ratio": round(loaded_summary["p99"] / idle_summary["p99"], 2)
        if idle_summary["p99"]
        else None,
        "probes_enough_for_p99": loaded_summary["n"] >= MIN_P99_PROBES,
        "probe_loadgen_cpu_us_per_request": round(loaded.cpu_us_per_request, 1),
        "image": f"{p.image_width}x{p.image_height} -> 320x180",
        "probe_rate_hz": p.probe_rate_hz,
    }
