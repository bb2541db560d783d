"""A closed-loop burst from the harness, for the warm-up and the fault pass (no scenario's figures).

``concurrency`` senders each send the next request as soon as their previous one is answered, i.e. "as
fast as the API takes them". Latency there is per request, from its actual send. Every measured scenario
sends through the open-loop generator instead (``fbt_bench.measuring.openloop``).
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    status: int  # HTTP status, or 0 when no response came (timeout, refused connection)
    job_id: str | None = None
    error: str | None = None


Send = Callable[[int], Awaitable[Outcome]]
Clock = Callable[[], float]


@dataclass(slots=True)
class BurstResult:
    requested: int
    concurrency: int
    sent: int = 0
    errors: int = 0
    send_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)


async def burst(send: Send, n: int, concurrency: int, *, clock: Clock = time.perf_counter) -> BurstResult:
    """Send ``n`` requests with ``concurrency`` senders, each waiting for its previous answer."""
    result = BurstResult(requested=n, concurrency=concurrency)
    indices = iter(range(n))

    async def sender() -> None:
        for index in indices:  # the shared iterator hands each index to exactly one sender
            began = clock()
            outcome = await _safe(send, index)
            result.sent += 1
            _count(result, outcome, (clock() - began) * 1000.0)

    began = clock()
    await asyncio.gather(*(sender() for _ in range(max(1, min(concurrency, n)))))
    result.send_s = clock() - began
    return result


async def _safe(send: Send, index: int) -> Outcome:
    try:
        return await send(index)
    except Exception as exc:  # one failed request is a counted error, not the end of the run
        return Outcome(ok=False, status=0, error=f"{type(exc).__name__}: {exc}")


MAX_ERROR_SAMPLES = 5


def _count(result: BurstResult, outcome: Outcome, latency_ms: float) -> bool:
    """Tally one answer; return whether it was a success (and so has a latency)."""
    if outcome.ok:
        result.latencies_ms.append(latency_ms)
        if outcome.job_id is not None:
            result.job_ids.append(outcome.job_id)
        return True
    result.errors += 1
    if len(result.error_samples) < MAX_ERROR_SAMPLES:
        result.error_samples.append(outcome.error or f"HTTP {outcome.status}")
    return False
