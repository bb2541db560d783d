"""Load generation: an open-loop constant-arrival schedule, and a closed-loop burst.

Open loop: request ``i`` has an intended send time ``start + i / rate`` fixed before the run begins, and
its latency is measured from that intended time, not from when it actually went out. A slow server
therefore cannot slow the arrivals down and hide its own slowness (no coordinated omission): requests
keep being issued on schedule and the time they wait shows up in the latency. In-flight requests are
capped; a request due while the cap is reached is counted as ``overflow`` (a failure), never dropped
silently.

Burst: ``concurrency`` senders each send the next request as soon as their previous one is answered,
i.e. "as fast as the API takes them". Latency there is per request, from its actual send.
"""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

# Time to set up before the first intended send, so request 0 is not late by construction.
LEAD_S = 0.05


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    status: int  # HTTP status, or 0 when no response came (timeout, refused connection)
    job_id: str | None = None
    error: str | None = None


Send = Callable[[int], Awaitable[Outcome]]
Clock = Callable[[], float]


@dataclass(slots=True)
class OpenLoopResult:
    rate_hz: float
    duration_s: float
    planned: int
    sent: int = 0
    errors: int = 0
    overflow: int = 0  # due while max_in_flight requests were outstanding: counted as failed, not sent
    elapsed_s: float = 0.0  # from the first intended send to the last response
    intended_s: list[float] = field(default_factory=list)  # offsets from the schedule start
    dispatched_s: list[float] = field(default_factory=list)  # when each request actually went out
    latencies_ms: list[float] = field(default_factory=list)  # ok responses, from their intended time
    latency_offsets_s: list[float] = field(default_factory=list)  # the intended offset of each latency above
    job_ids: list[str] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)

    @property
    def achieved_rate(self) -> float:
        """Requests actually dispatched per second: a loadgen that falls behind its schedule shows here."""
        if not self.dispatched_s:
            return 0.0
        span = self.dispatched_s[-1] - self.dispatched_s[0] + 1.0 / self.rate_hz
        return len(self.dispatched_s) / span


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


def schedule(rate_hz: float, duration_s: float) -> list[float]:
    """Intended send offsets in seconds: a fixed grid, independent of how the server behaves."""
    if rate_hz <= 0 or duration_s <= 0:
        raise ValueError("rate and duration must be positive")
    return [i / rate_hz for i in range(round(rate_hz * duration_s))]


async def open_loop(
    send: Send,
    rate_hz: float,
    duration_s: float,
    *,
    max_in_flight: int,
    stop: asyncio.Event | None = None,
    clock: Clock = time.perf_counter,
) -> OpenLoopResult:
    """Issue ``rate_hz * duration_s`` requests on a constant-arrival schedule and wait for every answer.

    Setting ``stop`` ends the schedule early (for a probe that runs "until the work is done"); the result
    then covers the requests due before it was set.
    """
    offsets = schedule(rate_hz, duration_s)
    result = OpenLoopResult(rate_hz=rate_hz, duration_s=duration_s, planned=len(offsets))
    in_flight: set[asyncio.Task[None]] = set()
    start = clock() + LEAD_S

    async def timed(index: int, offset: float) -> None:
        outcome = await _safe(send, index)
        latency_ms = (clock() - (start + offset)) * 1000.0
        if _count(result, outcome, latency_ms):
            result.latency_offsets_s.append(offset)

    for index, offset in enumerate(offsets):
        intended = start + offset
        delay = intended - clock()
        if delay > 0:
            if stop is None:
                await asyncio.sleep(delay)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
        if stop is not None and stop.is_set():
            result.planned = index
            result.duration_s = offset
            break
        result.intended_s.append(offset)
        if len(in_flight) >= max_in_flight:
            result.overflow += 1
            continue
        result.dispatched_s.append(clock() - start)
        result.sent += 1
        task = asyncio.create_task(timed(index, offset))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.gather(*in_flight)
    result.elapsed_s = clock() - start
    return result


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


def _count(result: OpenLoopResult | BurstResult, outcome: Outcome, latency_ms: float) -> bool:
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
