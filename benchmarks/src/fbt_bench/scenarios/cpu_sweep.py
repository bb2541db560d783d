"""cpu-sweep: how many resizes per second a runner takes before the API's own /health p99 breaks the SLO.

Measured twice (``sweep_placements``): ``shared``, every process on every core, and ``split``, the API (and
the harness with its load generators) on one core and the workers and the broker on the other
(``os.sched_setaffinity``). Tasks that run inside the API share its core in both; a queue's workers take the
API's CPU only when shared. So the split threshold tells in-process work's cost to the API (one process,
one GIL) apart from two processes competing for the same cores.

The threshold is found by ``threshold_search``: from ``sweep_start_hz`` double until a point fails (or
``sweep_max_hz`` passes), then bisect geometrically between the highest pass and the lowest fail until they
are within ``sweep_resolution`` of each other, in at most ``sweep_max_points`` points. A point offers resizes
open loop at its rate for a warm-up and then a window of ``sweep_window_s``, probing GET /health at least
``sweep_min_probes`` times inside the window (faster than ``probe_rate_hz`` where that takes it; the record
says at what rate). It passes when the window's p99 is within the SLO and no probe failed. Every resize of
a point is drained before the next point starts, so no point inherits another's backlog.
"""

import asyncio
import contextlib
import math
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import psutil

from fbt_bench.measuring import stats
from fbt_bench.measuring.ledger_reader import LedgerFollower
from fbt_bench.measuring.openloop import run_open_loop_async
from fbt_bench.measuring.sampler import ProcUsage
from fbt_bench.scenarios.context import ScenarioContext, drain, open_loop_warnings
from fbt_bench.scenarios.mixed import routes
from fbt_bench.scenarios.record import Measured

Placement = Literal["shared", "split"]
# The roles the split placement keeps off the API's core.
OFF_API_CORE = ("workers", "broker", "smtp")


@dataclass(frozen=True, slots=True)
class Point:
    """One rate of the sweep and what the API's /health did while it ran."""

    rate_hz: float
    p99_ms: float | None
    probes: int  # probes answered inside the window: the p99's n
    failed_probes: int
    resizes_sent: int
    passed: bool


@dataclass(frozen=True, slots=True)
class Search:
    points: tuple[Point, ...]
    threshold_hz: float | None  # the highest passing rate; None when none was found (``why`` says so)
    why: str


async def threshold_search(
    measure: Callable[[float], Awaitable[Point]],
    *,
    start_hz: float,
    max_hz: float,
    resolution: float,
    max_points: int,
    min_hz: float | None = None,
) -> Search:
    """The highest rate ``measure`` passes, by doubling then geometric bisection (see the module doc)."""
    floor_hz = start_hz / 8 if min_hz is None else min_hz
    points: list[Point] = []
    passed: float | None = None  # the highest rate that passed
    failed: float | None = None  # the lowest rate that failed
    rate = start_hz
    while len(points) < max_points:
        point = await measure(rate)
        points.append(point)
        if point.passed:
            passed = rate if passed is None else max(passed, rate)
        else:
            failed = rate if failed is None else min(failed, rate)
        if failed is None:
            if rate >= max_hz:
                return Search(tuple(points), None, f"no point failed up to the sweep's ceiling, {max_hz:g}/s")
            rate = min(rate * 2, max_hz)
        elif passed is None:
            if rate <= floor_hz:
                return Search(tuple(points), 0.0, f"already {rate:g}/s broke the SLO")
            rate = max(rate / 2, floor_hz)
        elif failed / passed <= resolution:
            break
        else:
            rate = math.sqrt(passed * failed)
    if passed is None:
        return Search(tuple(points), None, f"no rate passed within {max_points} points")
    if failed is None:
        return Search(tuple(points), None, f"every point passed; the sweep stopped after {max_points} points")
    return Search(tuple(points), passed, f"passes at {passed:.3g}/s, fails at {failed:.3g}/s")


@contextlib.contextmanager
def placed(ctx: ScenarioContext, placement: Placement) -> Iterator[dict[str, Any]]:
    """Pin the deployment for ``placement``; restore every affinity afterwards. Yields what was done."""
    cpus = sorted(os.sched_getaffinity(0))
    if placement == "shared" or len(cpus) < 2:
        yield {"placement": placement, "cpus": cpus, "applied": placement == "shared"}
        return
    api_core, other = {cpus[0]}, set(cpus[1:])
    saved: dict[int, set[int]] = {}

    def pin(pid: int, where: set[int]) -> None:
        with contextlib.suppress(psutil.Error, OSError):
            for member in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
                saved.setdefault(member.pid, os.sched_getaffinity(member.pid))
                os.sched_setaffinity(member.pid, where)

    # The harness (and the load generators it forks) stays beside the API, off the workers' core.
    saved[os.getpid()] = os.sched_getaffinity(0)
    os.sched_setaffinity(0, api_core)
    for group in ctx.deployment.groups():
        for pid in group.roots:
            if group.name == "api":
                pin(pid, api_core)
            elif group.name in OFF_API_CORE:
                pin(pid, other)
    try:
        yield {
            "placement": placement,
            "api_cpus": sorted(api_core),
            "other_cpus": sorted(other),
            "applied": True,
        }
    finally:
        for pid, where in saved.items():
            with contextlib.suppress(psutil.Error, OSError):
                os.sched_setaffinity(pid, where)


def probe_rate(ctx: ScenarioContext) -> float:
    """The /health probe's rate: the profile's, or faster where the window would hold too few probes."""
    p = ctx.profile
    return max(p.probe_rate_hz, math.ceil(p.sweep_min_probes / p.sweep_window_s))


async def measure_point(ctx: ScenarioContext, rate: float, placement: Placement, sweep: "Sweep") -> Point:
    """Resizes at ``rate`` for warm-up + window with /health probed throughout; the window's p99 decides."""
    p = ctx.profile
    path, body = routes(ctx)["resize_image"]
    seconds = p.sweep_warmup_s + p.sweep_window_s
    ctx.progress.phase(f"{ctx.tag('cpu-sweep')} {placement}: {rate:g} resizes/s for {seconds:g} s")
    probe = ctx.spec(probe_rate(ctx), seconds, method="GET", path="/health", body="")
    probing = asyncio.create_task(run_open_loop_async(probe))
    sent = await ctx.open_loop(ctx.spec(rate, seconds, path=path, body=body))
    probed = await probing
    in_window = [
        (latency, status)
        for intended, latency, status in zip(probed.intended_s, probed.latency_s, probed.status, strict=True)
        if intended >= p.sweep_warmup_s
    ]
    ok = [latency * 1000.0 for latency, status in in_window if 200 <= status < 300]
    failed = len(in_window) - len(ok)
    summary = stats.summarize_ms(ok)
    ids = sent.ok_job_ids()
    sweep.follower.expect(ids)
    sweep.expected += len(ids)
    sweep.warnings += open_loop_warnings("resize", sent) + open_loop_warnings("probe", probed)
    await drain(ctx, sweep.follower, sweep.expected, f"{ctx.tag('cpu-sweep')} resized")
    p99 = summary.get("p99") if ok else None
    passed = (
        bool(ok) and failed == 0 and p99 is not None and p99 <= p.slo_ms and len(ok) >= p.sweep_min_probes
    )
    return Point(rate, p99, len(ok), failed, len(ids), passed)


@dataclass(slots=True)
class Sweep:
    """One placement's sweep so far: every point's resizes are counted from one ledger follower."""

    follower: LedgerFollower
    expected: int = 0
    warnings: list[str] = field(default_factory=list)


async def cpu_sweep(ctx: ScenarioContext) -> list[dict[str, Any]]:
    return [await _one_placement(ctx, placement) for placement in ctx.profile.sweep_placements]


async def _one_placement(ctx: ScenarioContext, placement: Placement) -> dict[str, Any]:
    p = ctx.profile
    sweep = Sweep(ctx.follower())
    with placed(ctx, placement) as where, ctx.sampler() as sampler:
        search = await threshold_search(
            lambda rate: measure_point(ctx, rate, placement, sweep),
            start_hz=p.sweep_start_hz,
            max_hz=p.sweep_max_hz,
            resolution=p.sweep_resolution,
            max_points=p.sweep_max_points,
        )
        resources: dict[str, ProcUsage] = sampler.stop()
    tally = sweep.follower.tally(expected=sweep.expected)
    extra = {
        "placement": placement,
        "placed": where,
        "threshold_per_s": search.threshold_hz,
        "why": search.why,
        "points": [asdict(point) for point in search.points],
        "probe_rate_hz": probe_rate(ctx),
        "window_s": p.sweep_window_s,
        "warmup_s": p.sweep_warmup_s,
        # The probes the thresholds rest on: every point's window.
        "n": sum(point.probes for point in search.points),
        "slo_ms": p.slo_ms,
        "image": f"{p.image_width}x{p.image_height} -> 320x180",
    }
    measured = Measured(
        tally=tally, duration_s=tally.span_s, resources=resources, extra=extra, warnings=sweep.warnings
    )
    return ctx.record("cpu-sweep", measured)
