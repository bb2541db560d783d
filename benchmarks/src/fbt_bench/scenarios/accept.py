"""accept: the highest open-loop arrival rate at which POST /log/ keeps p99 under the SLO, workers running.

The search starts low and doubles until a step fails, then bisects between the last pass and the first
failure to the profile's resolution. It stops doubling (``knee_found`` false, ``stopped_because`` says
which) when the load generator itself would be the bottleneck (its CPU over a step above
``accept_loadgen_core_share`` of one core: a failure there could be the generator's, not the server's), or
at the profile's ceiling, a safety bound set high enough not to cut off a runner. A step passes when every
request was answered 2xx, none was late (due while every connection was busy) and the client latency p99,
timed from the intended send, is under ``slo_ms`` (below 100 samples, the max stands in for p99).
Between steps the backlog drains, so each step starts from an empty queue.

The API's cost is then decomposed at one offered rate common to every runner (``decomposition_rate``):
the project's route, the same app with an enqueue that does nothing (``floor_app`` bare, measured right
after each runner's window) and the library's own enqueue call, timed as thread CPU inside the API itself
(``fbt_tasks.enqueue_cost``); what is left is the project's share, and the three add up to the API's CPU.
"""

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import psutil
from hdrh.histogram import HdrHistogram

from fbt_bench.measuring import stats
from fbt_bench.measuring.ledger_reader import LedgerFollower
from fbt_bench.measuring.sampler import ResourceSampler
from fbt_bench.scenarios.context import ScenarioContext, drain, open_loop_warnings
from fbt_bench.scenarios.record import Measured

BODY = '{"msg": "accept #{i}"}'
MIN_P99_SAMPLES = 100
MAX_STEPS = 16


@dataclass
class Step:
    rate: float
    entry: dict[str, Any]
    histogram: HdrHistogram
    passed: bool
    sent: int
    loadgen_cpu_s: float
    warnings: list[str]
    loadgen_core_share: float  # the generator's CPU over the step / the step's elapsed time


# Why the search stopped: a knee bracketed, or why none was.
KNEE, GENERATOR, CEILING, NONE_PASSED, STEP_LIMIT = (
    "knee",
    "generator-bound",
    "ceiling",
    "no step passed",
    "step limit",
)


async def accept(ctx: ScenarioContext) -> dict[str, Any]:
    p = ctx.profile
    follower = ctx.follower()
    with ctx.sampler() as sampler:
        began = time.time()
        steps, best, stopped = await _search(ctx, sampler, follower)
        window = time.time() - began
        resources = sampler.stop()
    decompose = p.decomposition and (p.decomposition_repeats == 0 or ctx.repeat < p.decomposition_repeats)
    decomposition = await _decompose(ctx, best) if best > 0 and decompose else None
    sent = sum(step.sent for step in steps)
    tally = follower.tally(expected=sent)
    best_step = next((s for s in reversed(steps) if s.rate == best and s.passed), None)
    ctx.capacity()["accept"] = best
    knee_found = stopped == KNEE
    extra = {
        "max_rate_under_slo": best,
        "knee_found": knee_found,
        "stopped_because": stopped,
        "slo_ms": p.slo_ms,
        "steps": [s.entry for s in sorted(steps, key=lambda s: s.rate)],
        "decomposition": decomposition,
        "latency_ms_is": "client latency (from the intended send) of the step at max_rate_under_slo",
    }
    warnings = [w for s in steps for w in s.warnings if not s.passed or s.rate == best]
    if stopped == CEILING:
        warnings.append(
            f"the search reached its ceiling ({p.accept_ceiling_rate:g}/s) without a failing step"
        )
    elif stopped == GENERATOR:
        top = max(steps, key=lambda s: s.rate)
        warnings.append(
            f"the search stopped at {top.rate:g}/s: the load generator used {top.loadgen_core_share:.0%} of a "
            f"core (limit {p.accept_loadgen_core_share:.0%}), so a failure there could be its own"
        )
    elif stopped == STEP_LIMIT:
        warnings.append(f"the search used its {MAX_STEPS} steps before bracketing the knee")
    measured = Measured(
        tally=tally,
        duration_s=window,
        resources=resources,
        rate_word="accepted",
        throughput_per_s=best,
        cost_tasks=sent,
        latency=best_step.histogram if best_step else stats.new_histogram(),
        loadgen_cpu_us_per_request=sum(s.loadgen_cpu_s for s in steps) * 1e6 / sent if sent else None,
        loadgen_core_share=max((s.loadgen_core_share for s in steps), default=None),
        extra=extra,
        warnings=warnings,
    )
    return ctx.record("accept", measured)


async def _search(
    ctx: ScenarioContext, sampler: ResourceSampler, follower: LedgerFollower
) -> tuple[list[Step], float, str]:
    """Bracket with short steps, bisect with full ones; return every step, the highest rate that passed (0:
    none; a knee only ever rests on a full step) and why it stopped.

    Bracketing (doubling from the start rate, or halving when it fails) sends ``accept_probe_requests`` per
    step: those rates are far from the knee until the first failure. Bisection sends
    ``accept_knee_requests`` per step. A bracketing pass is only a candidate: once the bracket is found it
    is measured again at full length first, and if it fails then, the bracket moves below it.
    """
    p = ctx.profile
    steps: list[Step] = []
    passes: list[float] = []  # bracketing passes, lowest first: the fall-back when a candidate fails
    low, high, rate = 0.0, None, min(p.accept_start_rate, p.accept_ceiling_rate)
    floor_rate = rate / 2**p.accept_max_halvings
    full_passes: set[float] = set()
    while len(steps) < MAX_STEPS:
        bisecting = high is not None and low > 0
        confirming = bisecting and rate == low
        step = await _step(ctx, sampler, follower, rate, p.accept_knee_requests if bisecting else None)
        steps.append(step)
        generator_bound = step.loadgen_core_share > p.accept_loadgen_core_share
        if step.passed and (bisecting or p.accept_probe_requests >= p.accept_knee_requests):
            full_passes.add(rate)
        if step.passed:
            low = rate
            if not bisecting:
                passes.append(rate)
        elif generator_bound:
            return steps, low, GENERATOR  # not the server's failure for sure: no knee claimed
        elif confirming:
            # The candidate failed at full length: it becomes the upper bound, the pass below it the lower.
            high = rate
            passes = [r for r in passes if r < rate]
            low = passes[-1] if passes else 0.0
        else:
            high = rate
        if high is None:
            if generator_bound:
                return steps, low, GENERATOR  # doubling again would measure the generator
            if rate >= p.accept_ceiling_rate:
                return steps, low, CEILING
            rate = min(rate * 2, p.accept_ceiling_rate)
            continue
        if low == 0.0:
            if rate / 2 < floor_rate:
                return steps, low, NONE_PASSED  # nothing passed down to start / 2**halvings
            rate = round(rate / 2, 1)
            continue
        if low not in full_passes:
            rate = low  # a bracketing pass: measured at full length before anything rests on it
            continue
        if (high - low) / low <= p.accept_resolution:
            return steps, low, KNEE
        rate = round((low + high) / 2, 1)
    return steps, low, KNEE if high is not None and low in full_passes else STEP_LIMIT


async def _step(
    ctx: ScenarioContext,
    sampler: ResourceSampler,
    follower: LedgerFollower,
    rate: float,
    requests: int | None,
) -> Step:
    p = ctx.profile
    duration = p.accept_step_s(rate, p.accept_probe_requests if requests is None else requests)
    ctx.progress.phase(f"{ctx.tag('accept')}: {rate:g}/s for {duration:.1f} s")
    before = sampler.snapshot()
    result = await ctx.open_loop(ctx.spec(rate, duration, body=BODY))
    after = sampler.snapshot()
    api_cpu = after["api"]["cpu_s"] - before["api"]["cpu_s"] if "api" in after else None
    measured_api = api_cpu is not None and after["api"].get("processes", 0) > 0
    share = result.cpu_s / result.elapsed_s if result.elapsed_s > 0 else 0.0
    histogram = stats.histogram_of(lat * 1000.0 for lat in result.ok_latencies_s())
    summary = stats.summarize(histogram)
    n = summary["n"]
    p99 = summary["p99"] if n >= MIN_P99_SAMPLES else summary["max"]
    passed = result.errors == 0 and result.late == 0 and n > 0 and p99 <= p.slo_ms
    entry = {
        "rate": rate,
        "n": n,
        "p50": summary["p50"],
        "p99": summary["p99"] if n >= MIN_P99_SAMPLES else None,
        "max": summary["max"],
        "errors": result.errors,
        "late": result.late,
        "passed": passed,
        "loadgen_cpu_us_per_request": round(result.cpu_us_per_request, 1),
        "loadgen_wakeups_per_request": round(result.wakeups_per_request, 2),
        "api_cpu_us_per_request": round(api_cpu * 1e6 / result.sent, 1)
        if measured_api and api_cpu is not None and result.sent
        else None,
        "most_connections": result.most_connections,
        "loadgen_core_share": round(share, 3),
        "phase": "bracketing" if requests is None else "bisection",
    }
    ids = result.ok_job_ids()
    follower.expect(ids)
    await drain(ctx, follower, follower.tally().expected, f"{ctx.tag('accept')} backlog after {rate:g}/s")
    return Step(
        rate,
        entry,
        histogram,
        passed,
        result.sent,
        result.cpu_s,
        open_loop_warnings(f"{rate:g}/s", result),
        share,
    )


async def _decompose(ctx: ScenarioContext, knee: float) -> dict[str, Any] | None:
    """The project's route, the bare route and the library's enqueue, at one offered rate for every runner.

    The rate is the profile's common ``decomposition_rate``, lowered to ``decomposition_fraction`` of this
    runner's own knee only where that is below it (``at_common_rate`` false: that row is not comparable).
    The library's share is the thread CPU the API process itself spent inside ``Backend.enqueue`` over the
    same window (``GET /health/enqueue-cost``); the bare route is the project's own app with an enqueue that
    does nothing (``floor_app`` bare), served the same way at the same rate. So the three parts add up to
    the API's CPU per request by construction: project = API - bare - library.
    """
    p = ctx.profile
    rate = min(p.decomposition_rate, round(knee * p.decomposition_fraction, 1))
    duration = p.accept_step_s(rate)
    label = f"{ctx.tag('accept')}: API cost decomposition"
    ctx.progress.phase(f"{label} at {rate:g}/s")
    # Every job sent here runs: waited for before the next measurement, which would otherwise start on a
    # backlog (a slow worker path needs tens of seconds for it).
    follower = ctx.follower()
    async with ctx.client() as client:
        calls_before, enqueue_cpu_before = await client.enqueue_cost()
        with ctx.sampler() as sampler:
            before = sampler.snapshot()
            result = await ctx.open_loop(ctx.spec(rate, duration, body=BODY))
            after = sampler.snapshot()
        calls_after, enqueue_cpu_after = await client.enqueue_cost()
    follower.expect(result.ok_job_ids())
    await drain(ctx, follower, follower.tally().expected, f"{label}: the route's jobs")
    api_cpu_s = None
    if "api" in after and after["api"]["processes"]:
        api_cpu_s = after["api"]["cpu_s"] - before["api"]["cpu_s"]
    bare_us = await bare_route_us(ctx, rate, duration)
    return decomposition_record(
        rate=rate,
        common_rate=p.decomposition_rate,
        requests=result.sent,
        api_cpu_s=api_cpu_s,
        bare_us=bare_us,
        enqueues=calls_after - calls_before,
        enqueue_cpu_s=enqueue_cpu_after - enqueue_cpu_before,
    )


def decomposition_record(
    *,
    rate: float,
    common_rate: float,
    requests: int,
    api_cpu_s: float | None,
    bare_us: float | None,
    enqueues: int,
    enqueue_cpu_s: float,
) -> dict[str, Any]:
    """The decomposition's parts per request; project = API - bare - library, so the parts add up to the API."""
    api_us = api_cpu_s * 1e6 / requests if api_cpu_s is not None and requests else None
    library_us = enqueue_cpu_s * 1e6 / enqueues if enqueues else None
    project_us = None
    if api_us is not None and bare_us is not None and library_us is not None:
        # Rounded from the rounded parts, so a reader's sum of the printed row gives the printed total.
        project_us = round(api_us, 1) - round(bare_us, 1) - round(library_us, 1)
    return {
        "rate": rate,
        "at_common_rate": rate == common_rate,
        "bare_route_us": _r(bare_us),
        "library_enqueue_us": _r(library_us),
        "library_enqueues": enqueues,
        "library_measured": "thread CPU inside the API process around the library's own enqueue call",
        "api_us": _r(api_us),
        "project_us": _r(project_us),
        "requests": requests,
    }


async def bare_route_us(ctx: ScenarioContext, rate: float, duration: float) -> float | None:
    """The bare route's CPU per request at ``rate``, measured right after the runner's own window: a shared
    machine drifts over a run, and a figure measured minutes away would not subtract from this one."""
    shared = ctx.shared
    if shared.bare_url is None or shared.bare_pid is None:
        return None
    spec = dataclasses.replace(
        ctx.spec(rate, duration, body=BODY), base_url=shared.bare_url, headers={"X-API-Key": shared.bare_key}
    )
    process = psutil.Process(shared.bare_pid)
    before = process.cpu_times()
    result = await ctx.open_loop(spec)
    after = process.cpu_times()
    if not result.sent:
        return None
    return (after.user + after.system - before.user - before.system) * 1e6 / result.sent


def _r(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None
