"""cpu-heavy: image resizes while a probe hits GET /health at a fixed rate: the API's p99 idle vs loaded."""

import asyncio
import time
from typing import Any

from fbt_bench.measuring import loadgen, stats
from fbt_bench.profiles import Profile
from fbt_bench.scenarios.context import ScenarioContext, drain, finish_window, send_warnings
from fbt_bench.scenarios.record import make_record

MAX_TIMESERIES_POINTS = 400


async def cpu_heavy(ctx: ScenarioContext) -> dict[str, Any]:
    p = ctx.profile
    follower = ctx.follower()
    async with ctx.client() as client:
        ctx.progress.phase(f"{ctx.tag('cpu-heavy')}: probing GET /health idle for {p.probe_idle_s:g} s")
        idle = await loadgen.open_loop(
            lambda _: client.health(), p.probe_rate_hz, p.probe_idle_s, max_in_flight=p.max_in_flight
        )
        ctx.progress.phase(f"{ctx.tag('cpu-heavy')}: {p.cpu_n} resizes while probing")
        with ctx.sampler() as sampler:
            stop = asyncio.Event()
            began_wall = time.time()
            probe_task = asyncio.create_task(
                loadgen.open_loop(
                    lambda _: client.health(),
                    p.probe_rate_hz,
                    p.drain_timeout_s,
                    max_in_flight=p.max_in_flight,
                    stop=stop,
                )
            )
            try:
                sent = await loadgen.burst(
                    lambda i: client.resize(p.image_width, p.image_height, 320, 180, seed=ctx.seed + i),
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
    extra = _probe_extra(ctx.profile, idle, loaded)
    warnings = send_warnings("resize", sent.sent, sent.errors, sent.error_samples)
    warnings += send_warnings("probe", loaded.sent, loaded.errors, loaded.error_samples, loaded.overflow)
    return make_record(
        runner=ctx.runner,
        scenario="cpu-heavy",
        repeat=ctx.repeat,
        config=ctx.config,
        tally=tally,
        duration_s=finish_window(tally, began_wall),
        resources=resources,
        enqueue_latency_ms=stats.summarize_ms(sent.latencies_ms),
        extra=extra,
        warnings=warnings,
    )


def _probe_extra(p: Profile, idle: loadgen.OpenLoopResult, loaded: loadgen.OpenLoopResult) -> dict[str, Any]:
    """The /health probe idle and under load: summaries, the loaded time series, their ratio."""
    idle_summary, loaded_summary = (
        stats.summarize_ms(idle.latencies_ms),
        stats.summarize_ms(loaded.latencies_ms),
    )
    series = [
        [round(t, 3), round(ms, 3)]
        for t, ms in zip(loaded.latency_offsets_s, loaded.latencies_ms, strict=True)
    ]
    return {
        "probe_idle_ms": idle_summary,
        "probe_loaded_ms": loaded_summary,
        "probe_timeseries": stats.downsample(sorted(series), MAX_TIMESERIES_POINTS) if series else [],
        "interference_ratio": round(loaded_summary["p99"] / idle_summary["p99"], 2)
        if idle_summary["p99"]
        else None,
        "image": f"{p.image_width}x{p.image_height} -> 320x180",
        "probe_rate_hz": p.probe_rate_hz,
    }
