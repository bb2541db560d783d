"""The API probed while the broker or the API is out of service (stopped, full, redeployed): what each request
got, and how fast.

broker-restart, broker-full and api-deploy post an email at a fixed rate for as long as the fault lasts, and
a second more, and count the answers: 200 (accepted), 503 (refused, retryable), other (an error status, or
no API listening), or a hang.
"""

import asyncio
import time
from collections import Counter
from typing import Any

from fbt_bench.faults.observe import HANG_S, FaultContext
from fbt_bench.measuring.api_client import RequestError, RequestTimeout

# The probe runs until the broker is back, never longer than this.
OUTAGE_PROBE_MAX_S = 120.0

Answer = tuple[float, str, float]  # (sent at, "200"|"503"|"other"|"hang", latency ms)


def outage_answers(during: list[Answer], down_s: float) -> dict[str, Any]:
    """What the API answered while the broker was out: counts by kind and the slowest answer."""
    kinds = Counter(kind for _, kind, _ in during)
    return {
        "down_s": round(down_s, 2),
        "requests": len(during),
        "answers": {kind: kinds.get(kind, 0) for kind in ("200", "503", "other", "hang")},
        "max_latency_ms": round(max((ms for *_, ms in during), default=0.0), 1),
    }


async def outage_probe(ctx: FaultContext, back: asyncio.Event, rate_hz: float | None = None) -> list[Answer]:
    """POST an email at ``rate_hz`` (default: the outage probe's rate) until ``back`` is set and a second more
    (at most OUTAGE_PROBE_MAX_S): (sent at, "200"|"503"|"other"|"hang", latency ms) per request. "other" is
    an error status or no connection at all (nothing listening on the port).

    Accepted emails join the expected set: a job the API accepted during an outage must not be lost either.
    """
    answers: list[Answer] = []
    tasks: list[asyncio.Task[None]] = []
    rate = rate_hz or ctx.params.outage_probe_hz
    # Enough connections for every request a hang could keep open at once (HANG_S at the probe's rate).
    async with ctx.client(connections=round(HANG_S * rate) + 1) as client:

        async def one(i: int) -> None:
            sent_at, began = time.time(), time.perf_counter()
            try:
                outcome = await client.send_mail(f"outage{i}@example.com", "Outage", "x")
                kind = str(outcome.status) if outcome.status in (200, 503) else "other"
                if outcome.ok and outcome.job_id:
                    ctx.accepted.append(outcome.job_id)
            except RequestTimeout:
                kind = "hang"
            except RequestError:
                kind = "other"
            answers.append((sent_at, kind, (time.perf_counter() - began) * 1000))

        began, back_at = time.monotonic(), None
        while time.monotonic() - began < OUTAGE_PROBE_MAX_S:
            if back.is_set():
                back_at = back_at or time.monotonic()
                if time.monotonic() - back_at >= 1.0:
                    break
            tasks.append(asyncio.create_task(one(len(tasks))))
            await asyncio.sleep(1 / rate)
        await asyncio.gather(*tasks)
    return answers
