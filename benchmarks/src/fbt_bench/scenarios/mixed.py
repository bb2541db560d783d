"""mixed: 80% log, 15% email, 5% resize at a fixed arrival rate: e2e latency per kind."""

import random
import time
from collections.abc import Awaitable
from typing import Any

from fbt_bench.measuring import loadgen, stats
from fbt_bench.scenarios.context import ScenarioContext, drain, finish_window, send_warnings
from fbt_bench.scenarios.record import make_record

MIX: tuple[tuple[str, float], ...] = (("write_log", 0.80), ("send_email", 0.15), ("resize_image", 0.05))


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
