"""cpu-heavy: image resizes while a probe hits GET /health at a fixed rate: the API's p99 idle vs loaded.

Both the resizes and the probe go through the open-loop generator (two processes of it, each timed from
the intended send and measuring its own CPU): ``cpu_n`` resizes offered at ``cpu_rate_hz``, and the probe
at ``probe_rate_hz`` from the first resize until the last one is in the ledger. A p99 needs at least 100
probes: when the loaded window gives fewer, the record says so and ``probes_enough_for_p99`` is false
(the report prints the max instead).
"""

import asyncio
from typing import Any

from fbt_bench.measuring import stats
from fbt_bench.measuring.openloop import OpenLoopResult, concurrent_core_share, run_open_loop_async
from fbt_bench.profiles import Profile
from fbt_bench.scenarios.context import ScenarioContext, drain, open_loop_warnings
from fbt_bench.scenarios.mixed import routes
from fbt_bench.scenarios.record import Measured

MAX_TIMESERIES_POINTS = 400
MIN_P99_PROBES = 100


async def cpu_heavy(ctx: ScenarioContext) -> dict[str, Any]:
    p = ctx.profile
    follower = ctx.follower()
    probe = {"method": "GET", "path": "/health", "body": ""}
    ctx.progress.phase(f"{ctx.tag('cpu-heavy')}: probing GET /health idle for {p.probe_idle_s:g} s")
    idle = await ctx.open_loop(ctx.spec(p.probe_rate_hz, p.probe_idle_s, **probe))
    ctx.progress.phase(f"{ctx.tag('cpu-heavy')}: {p.cpu_n} resizes at {p.cpu_rate_hz:g}/s while probing")
    path, body = routes(ctx)["resize_image"]
    with ctx.sampler() as sampler:
        stop = asyncio.Event()
        probe_task = asyncio.create_task(
            run_open_loop_async(ctx.spec(p.probe_rate_hz, p.drain_timeout_s, **probe), stop)
        )
        try:
            sent = await ctx.open_loop(ctx.spec(p.cpu_rate_hz, p.cpu_n / p.cpu_rate_hz, path=path, body=body))
            follower.expect(sent.ok_job_ids())
            await drain(ctx, follower, len(sent.ok_job_ids()), f"{ctx.tag('cpu-heavy')} resized")
        finally:
            stop.set()
            loaded = await probe_task
        resources = sampler.stop()
    tally = follower.tally(expected=sent.planned)
    extra = _probe_extra(p, idle, loaded)
    warnings = open_loop_warnings("resize", sent) + open_loop_warnings("probe", loaded)
    if not extra["probes_enough_for_p99"]:
        warnings.append(
            f"{extra['probe_loaded_ms']['n']} probes under load, fewer than {MIN_P99_PROBES}: p99 is the max"
        )
    measured = Measured(
        tally=tally,
        duration_s=tally.span_s,
        resources=resources,
        # The resize generator's own CPU; the probe generator's is in extra.probe_loadgen_cpu_us_per_request.
        loadgen_cpu_us_per_request=sent.cpu_us_per_request,
        loadgen_core_share=concurrent_core_share([sent, loaded]),
        client_latency_ms=stats.summarize_ms(lat * 1000.0 for lat in sent.ok_latencies_s()),
        extra={**extra, "resize_rate_hz": p.cpu_rate_hz},
        warnings=warnings,
    )
    return ctx.record("cpu-heavy", measured)


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
