"""The five scenarios, each sent through the public API exactly as a user would, and counted from the ledger.

1. enqueue    open-loop constant arrivals of POST /log/ at several rates: client latency from the intended
              send time, the highest rate whose p99 stays under the SLO, and the enqueue cost, defined as
              (API CPU + broker CPU) / tasks sent while sending.
2. log-burst  N log tasks as fast as the API takes them: send time, drain time, tasks/s, e2e latency.
3. email-io   N emails to an SMTP sink that takes ``smtp_delay_ms`` per message: throughput vs slots/delay.
4. cpu-heavy  image resizes while a probe hits GET /health at a fixed rate: the API's p99 idle vs loaded.
5. mixed      80% log, 15% email, 5% resize at a fixed arrival rate: e2e latency per kind.

End-to-end latency is ``finished_at - enqueued_at`` from the ledger (enqueued_at is stamped by the API when
it accepts the request); durations run from the first request to the last ledger completion.
"""

import asyncio
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fbt_bench import loadgen, stats
from fbt_bench.api_client import ApiClient
from fbt_bench.ledger_reader import LedgerFollower, LedgerTally
from fbt_bench.profiles import Profile
from fbt_bench.progress import ProgressSink
from fbt_bench.results import make_record
from fbt_bench.sampler import ResourceSampler
from fbt_bench.topology import Deployment

MAX_TIMESERIES_POINTS = 400
MIX: tuple[tuple[str, float], ...] = (("write_log", 0.80), ("send_email", 0.15), ("resize_image", 0.05))


@dataclass
class ScenarioContext:
    runner: str
    repeat: int
    config: str
    profile: Profile
    deployment: Deployment
    progress: ProgressSink
    seed: int = 0

    def client(self) -> ApiClient:
        return ApiClient(
            self.deployment.api_url, self.deployment.api_key, connections=self.profile.connections
        )

    def sampler(self) -> ResourceSampler:
        return ResourceSampler(self.deployment.groups)

    def follower(self) -> LedgerFollower:
        return LedgerFollower.from_end(self.deployment.ledger_path)

    def tag(self, scenario: str) -> str:
        return f"{self.runner} r{self.repeat} {scenario}"


Scenario = Callable[[ScenarioContext], Awaitable[dict[str, Any]]]


async def drain(ctx: ScenarioContext, follower: LedgerFollower, expected: int, label: str) -> LedgerTally:
    """Wait (in a thread, so the event loop stays free) until every job is in the ledger or time is up."""
    return await drain_ledger(follower, expected, ctx.profile, ctx.progress, label)


async def drain_ledger(
    follower: LedgerFollower, expected: int, profile: Profile, progress: ProgressSink, label: str
) -> LedgerTally:
    bar = progress.bar(label, expected)
    cancel = threading.Event()
    try:
        return await asyncio.to_thread(
            follower.wait,
            expected,
            drain_timeout_s=profile.drain_timeout_s,
            stall_timeout_s=profile.stall_timeout_s,
            on_progress=lambda done: progress.update(bar, done),
            cancel=cancel,
        )
    finally:
        # On Ctrl-C the await is cancelled but the thread is not: tell it to stop so teardown is not held up.
        cancel.set()
        progress.close(bar)


def send_warnings(what: str, sent: int, errors: int, samples: list[str], overflow: int = 0) -> list[str]:
    found = []
    if errors:
        found.append(f"{what}: {errors} of {sent} requests failed (e.g. {'; '.join(samples[:2])})")
    if overflow:
        found.append(f"{what}: {overflow} requests were due while the in-flight cap was reached and not sent")
    return found


def finish_window(tally: LedgerTally, began_wall: float) -> float:
    """From the first request to the last completion in the ledger (same host clock)."""
    if tally.last_finished_at is None:
        return 0.0
    return max(tally.last_finished_at - began_wall, 0.0)


async def enqueue(ctx: ScenarioContext) -> dict[str, Any]:
    p = ctx.profile
    follower = ctx.follower()
    rates: list[dict[str, Any]] = []
    all_latencies = stats.new_histogram()
    sent_total, api_broker_cpu_s, send_window_s = 0, 0.0, 0.0
    warnings: list[str] = []
    with ctx.sampler() as sampler:
        async with ctx.client() as client:
            for rate in p.enqueue_rates:
                ctx.progress.phase(f"{ctx.tag('enqueue')}: {rate}/s for {p.enqueue_duration_s:g} s")
                before = sampler.snapshot()
                result = await loadgen.open_loop(
                    lambda i, rate=rate: client.log(f"enqueue {ctx.runner} {rate}/s #{i}"),
                    rate,
                    p.enqueue_duration_s,
                    max_in_flight=p.max_in_flight,
                )
                after = sampler.snapshot()
                follower.expect(result.job_ids)
                sent_total += result.sent
                send_window_s += result.elapsed_s
                api_broker_cpu_s += sum(
                    after[g]["cpu_s"] - before[g]["cpu_s"] for g in ("api", "broker") if g in after
                )
                histogram = stats.histogram_of(result.latencies_ms)
                all_latencies.add(histogram)
                rates.append(
                    {
                        "rate": rate,
                        "sent": result.sent,
                        "errors": result.errors + result.overflow,
                        "achieved_rate": round(result.achieved_rate, 2),
                        "latency_ms": stats.summarize(histogram),
                    }
                )
                warnings += send_warnings(
                    f"{rate}/s", result.sent, result.errors, result.error_samples, result.overflow
                )
                # Let the backlog clear so the next rate starts from an empty queue.
                await drain(ctx, follower, follower.tally().expected, f"{ctx.tag('enqueue')} drain {rate}/s")
        resources = sampler.stop()
    planned = sum(len(loadgen.schedule(rate, p.enqueue_duration_s)) for rate in p.enqueue_rates)
    tally = follower.tally(expected=planned)
    extra = {
        "rates": rates,
        "max_rate_under_slo": max_rate_under_slo(rates, p.slo_ms),
        # Someone else's API and broker are not sampled in external mode: no cost rather than a false zero.
        "enqueue_cost_us": round(api_broker_cpu_s / sent_total * 1e6, 1)
        if sent_total and ctx.deployment.topology == "local"
        else None,
        "enqueue_cost_definition": "(API CPU s + broker CPU s) in the send windows / requests sent, in µs",
        "slo_ms": p.slo_ms,
    }
    return make_record(
        runner=ctx.runner,
        scenario="enqueue",
        repeat=ctx.repeat,
        config=ctx.config,
        tally=tally,
        duration_s=send_window_s,
        resources=resources,
        enqueue_latency_ms=stats.summarize(all_latencies),
        extra=extra,
        warnings=warnings,
    )


def max_rate_under_slo(rates: list[dict[str, Any]], slo_ms: float) -> int | None:
    """The highest rate that, like every lower rate, kept p99 under the SLO with no failed request."""
    best = None
    for entry in sorted(rates, key=lambda e: e["rate"]):
        if entry["errors"] or entry["sent"] == 0 or entry["latency_ms"]["p99"] > slo_ms:
            break
        best = entry["rate"]
    return best


async def burst_of(
    ctx: ScenarioContext,
    scenario: str,
    n: int,
    send: Callable[[ApiClient, int], Awaitable[loadgen.Outcome]],
) -> tuple[loadgen.BurstResult, LedgerTally, dict[str, Any], float, float]:
    """Send ``n`` jobs as fast as the API takes them, then wait for the ledger (the burst scenarios)."""
    follower = ctx.follower()
    with ctx.sampler() as sampler:
        ctx.progress.phase(f"{ctx.tag(scenario)}: sending {n}")
        began_wall = time.time()
        async with ctx.client() as client:
            result = await loadgen.burst(lambda i: send(client, i), n, ctx.profile.burst_concurrency)
        sent_wall = time.time()
        follower.expect(result.job_ids)
        await drain(ctx, follower, len(result.job_ids), f"{ctx.tag(scenario)} completed")
        resources = sampler.stop()
    return result, follower.tally(expected=n), resources, began_wall, sent_wall


def burst_record(
    ctx: ScenarioContext,
    scenario: str,
    result: loadgen.BurstResult,
    tally: LedgerTally,
    resources: dict[str, Any],
    duration: float,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """The record shape both burst scenarios share; only their ``extra`` differs."""
    return make_record(
        runner=ctx.runner,
        scenario=scenario,
        repeat=ctx.repeat,
        config=ctx.config,
        tally=tally,
        duration_s=duration,
        resources=resources,
        enqueue_latency_ms=stats.summarize_ms(result.latencies_ms),
        extra=extra,
        warnings=send_warnings("send", result.sent, result.errors, result.error_samples),
    )


async def log_burst(ctx: ScenarioContext) -> dict[str, Any]:
    n = ctx.profile.log_burst_n
    result, tally, resources, began, sent = await burst_of(
        ctx, "log-burst", n, lambda client, i: client.log(f"burst {ctx.runner} #{i}")
    )
    duration = finish_window(tally, began)
    extra = {"send_s": round(result.send_s, 3), "drain_s": round(max(began + duration - sent, 0.0), 3)}
    return burst_record(ctx, "log-burst", result, tally, resources, duration, extra)


async def email_io(ctx: ScenarioContext) -> dict[str, Any]:
    p = ctx.profile
    result, tally, resources, began, _ = await burst_of(
        ctx,
        "email-io",
        p.email_n,
        lambda client, i: client.send_mail(f"user{i}@example.com", f"Welcome #{i}", "Thanks for joining"),
    )
    duration = finish_window(tally, began)
    throughput = tally.completed / duration if duration else 0.0
    ideal = p.slots / (p.smtp_delay_ms / 1000.0) if p.smtp_delay_ms else None
    extra = {
        "ideal_throughput_per_s": round(ideal, 2) if ideal else None,
        "efficiency": round(throughput / ideal, 3) if ideal else None,
        "delay_ms": p.smtp_delay_ms,
        "send_s": round(result.send_s, 3),
    }
    return burst_record(ctx, "email-io", result, tally, resources, duration, extra)


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
    idle_summary, loaded_summary = (
        stats.summarize_ms(idle.latencies_ms),
        stats.summarize_ms(loaded.latencies_ms),
    )
    series = [
        [round(t, 3), round(ms, 3)]
        for t, ms in zip(loaded.latency_offsets_s, loaded.latencies_ms, strict=True)
    ]
    extra = {
        "probe_idle_ms": idle_summary,
        "probe_loaded_ms": loaded_summary,
        "probe_timeseries": stats.downsample(sorted(series), MAX_TIMESERIES_POINTS) if series else [],
        "interference_ratio": round(loaded_summary["p99"] / idle_summary["p99"], 2)
        if idle_summary["p99"]
        else None,
        "image": f"{p.image_width}x{p.image_height} -> 320x180",
        "probe_rate_hz": p.probe_rate_hz,
    }
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


def mixed_kinds(n: int, seed: int) -> list[str]:
    """A reproducible 80/15/5 sequence of job kinds."""
    rng = random.Random(seed)
    kinds, weights = zip(*MIX, strict=True)
    return rng.choices(kinds, weights=weights, k=n)


async def mixed(ctx: ScenarioContext) -> dict[str, Any]:
    p = ctx.profile
    kinds = mixed_kinds(len(loadgen.schedule(p.mixed_rate, p.mixed_duration_s)), ctx.seed)
    follower = ctx.follower()
    with ctx.sampler() as sampler:
        ctx.progress.phase(f"{ctx.tag('mixed')}: {p.mixed_rate}/s for {p.mixed_duration_s:g} s")
        began_wall = time.time()
        async with ctx.client() as client:

            def send(i: int) -> Awaitable[loadgen.Outcome]:
                if kinds[i] == "send_email":
                    return client.send_mail(f"mixed{i}@example.com", "Mixed", "Mixed workload")
                if kinds[i] == "resize_image":
                    return client.resize(p.image_width, p.image_height, 320, 180, seed=ctx.seed + i)
                return client.log(f"mixed {ctx.runner} #{i}")

            result = await loadgen.open_loop(
                send, p.mixed_rate, p.mixed_duration_s, max_in_flight=p.max_in_flight
            )
        follower.expect(result.job_ids)
        await drain(ctx, follower, len(result.job_ids), f"{ctx.tag('mixed')} completed")
        resources = sampler.stop()
    tally = follower.tally(expected=len(kinds))
    extra = {
        "by_kind": {
            kind: stats.summarize(tally.latency_by_kind.get(kind, stats.new_histogram())) for kind, _ in MIX
        },
        "mix": {kind: share for kind, share in MIX},
        "rate": p.mixed_rate,
    }
    return make_record(
        runner=ctx.runner,
        scenario="mixed",
        repeat=ctx.repeat,
        config=ctx.config,
        tally=tally,
        duration_s=finish_window(tally, began_wall),
        resources=resources,
        enqueue_latency_ms=stats.summarize_ms(result.latencies_ms),
        extra=extra,
        warnings=send_warnings("send", result.sent, result.errors, result.error_samples, result.overflow),
    )


SCENARIOS: dict[str, Scenario] = {
    "enqueue": enqueue,
    "log-burst": log_burst,
    "email-io": email_io,
    "cpu-heavy": cpu_heavy,
    "mixed": mixed,
}


async def warm_up(ctx: ScenarioContext) -> LedgerTally:
    """A few jobs end to end before measuring: proves the workers consume, and loads lazy imports."""
    follower = ctx.follower()
    async with ctx.client() as client:
        result = await loadgen.burst(
            lambda i: client.log(f"warmup {ctx.runner} #{i}"), ctx.profile.warmup_n, 4
        )
        await client.send_mail("warmup@example.com", "Warm-up", "Warm-up")
    follower.expect(result.job_ids)
    return await drain(ctx, follower, len(result.job_ids), f"{ctx.runner} warm-up")
