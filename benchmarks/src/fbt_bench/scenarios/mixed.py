"""mixed: 80% log, 15% email, 5% resize at a fixed arrival rate: e2e latency per kind.

Three open-loop generators, one per kind, each with seeded Poisson arrivals at its share of the rate: the
superposition of independent Poisson streams is a Poisson stream at the whole rate with that mix, so the
API sees the same arrivals one generator would send, each kind on its own route.
"""

import asyncio
import time
from typing import Any

from fbt_bench.measuring import stats
from fbt_bench.measuring.openloop import OpenLoopResult, concurrent_core_share
from fbt_bench.scenarios.context import ScenarioContext, drain, finish_window, open_loop_warnings
from fbt_bench.scenarios.record import Measured

MIX: tuple[tuple[str, float], ...] = (("write_log", 0.80), ("send_email", 0.15), ("resize_image", 0.05))


def routes(ctx: ScenarioContext) -> dict[str, tuple[str, str]]:
    """Path and JSON body (``{i}``: the request index) of each kind, as a user would send them."""
    p = ctx.profile
    resize = (
        f'{{"width": {p.image_width}, "height": {p.image_height}, "target_width": 320, '
        '"target_height": 180, "seed": {i}}'
    )
    return {
        "write_log": ("/log/", '{"msg": "mixed #{i}"}'),
        "send_email": (
            "/send-mail/",
            '{"email": "mixed{i}@example.com", "subject": "Mixed", "body": "Mixed"}',
        ),
        "resize_image": ("/resize", resize),
    }


async def mixed(ctx: ScenarioContext) -> dict[str, Any]:
    p = ctx.profile
    follower = ctx.follower()
    paths = routes(ctx)
    with ctx.sampler() as sampler:
        ctx.progress.phase(f"{ctx.tag('mixed')}: {p.mixed_rate}/s for {p.mixed_duration_s:g} s")
        began_wall = time.time()
        specs = [
            ctx.spec(
                p.mixed_rate * share,
                p.mixed_duration_s,
                path=paths[kind][0],
                body=paths[kind][1],
                poisson_seed=ctx.seed + index,
            )
            for index, (kind, share) in enumerate(MIX)
        ]
        results: list[OpenLoopResult] = list(await asyncio.gather(*(ctx.open_loop(s) for s in specs)))
        ids = [job for result in results for job in result.ok_job_ids()]
        follower.expect(ids)
        await drain(ctx, follower, len(ids), f"{ctx.tag('mixed')} completed")
        resources = sampler.stop()
    planned = sum(result.planned for result in results)
    sent = sum(result.sent for result in results)
    tally = follower.tally(expected=planned)
    extra = {
        "by_kind": {
            kind: stats.summarize(tally.latency_by_kind.get(kind, stats.new_histogram())) for kind, _ in MIX
        },
        "mix": {kind: share for kind, share in MIX},
        "rate": p.mixed_rate,
        "sent_by_kind": {kind: result.sent for (kind, _), result in zip(MIX, results, strict=True)},
    }
    measured = Measured(
        tally=tally,
        duration_s=finish_window(tally, began_wall),
        resources=resources,
        loadgen_cpu_us_per_request=sum(r.cpu_s for r in results) * 1e6 / sent if sent else None,
        loadgen_core_share=concurrent_core_share(results),
        client_latency_ms=stats.summarize_ms(
            lat * 1000.0 for result in results for lat in result.ok_latencies_s()
        ),
        extra=extra,
        warnings=[w for (kind, _), r in zip(MIX, results, strict=True) for w in open_loop_warnings(kind, r)],
    )
    return ctx.record("mixed", measured)
