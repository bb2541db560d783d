"""What every scenario shares: the context of one runner (or floor) and repeat, the open-loop sender,
draining the ledger, the warm-up."""

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fbt_bench.measuring import loadgen
from fbt_bench.measuring.api_client import ApiClient
from fbt_bench.measuring.ledger_reader import LedgerFollower, LedgerTally
from fbt_bench.measuring.openloop import OpenLoopResult, OpenLoopSpec, run_open_loop_async
from fbt_bench.measuring.sampler import ResourceSampler
from fbt_bench.profiles import Profile
from fbt_bench.progress import ProgressSink
from fbt_bench.scenarios.record import Measured, make_record
from fbt_bench.topology import Deployment
from fbt_tasks.registry import system_key


@dataclass
class RepeatShared:
    """What the runners and floors of one repeat share: the bare route's app (the accept decomposition's
    floor), each one's capacities (steady's input), the placement."""

    bare_url: str | None = None
    bare_key: str = ""
    bare_pid: int | None = None
    capacities: dict[str, dict[str, float]] = field(default_factory=dict)
    pin_loadgen: bool = False


@dataclass
class ScenarioContext:
    runner: str
    repeat: int
    config: str
    profile: Profile
    deployment: Deployment
    progress: ProgressSink
    seed: int = 0
    shared: RepeatShared = field(default_factory=RepeatShared)
    full_api: bool = True  # False for a floor's app, which serves POST /log/ and GET /health only

    @property
    def broker(self) -> str:
        return self.deployment.broker

    def client(self) -> ApiClient:
        return ApiClient(
            self.deployment.api_url, self.deployment.api_key, connections=self.profile.connections
        )

    def sampler(self) -> ResourceSampler:
        return ResourceSampler(self.deployment.groups)

    def follower(self) -> LedgerFollower:
        return LedgerFollower.from_end(self.deployment.ledger_path)

    @property
    def key(self) -> str:
        """The runner's key on this broker (``celery/rabbitmq``; its plain name on its default broker)."""
        return system_key(self.runner, self.broker)

    def tag(self, scenario: str) -> str:
        return f"{self.key} r{self.repeat} {scenario}"

    def capacity(self) -> dict[str, float]:
        # By system key: Celery on RabbitMQ has capacities of its own, never Celery on Redis's.
        return self.shared.capacities.setdefault(self.key, {})

    def spec(self, rate: float, duration_s: float, **fields: Any) -> OpenLoopSpec:
        """An open-loop spec against this deployment: its URL and key, the profile's connection cap."""
        return OpenLoopSpec(
            base_url=self.deployment.api_url,
            rate_hz=rate,
            duration_s=duration_s,
            headers={"X-API-Key": self.deployment.api_key},
            max_connections=self.profile.loadgen_connections,
            warm_connections=min(self.profile.slots, 16),
            pin_cpu=self.shared.pin_loadgen,
            **fields,
        )

    async def open_loop(self, spec: OpenLoopSpec) -> OpenLoopResult:
        return await run_open_loop_async(spec)

    def record(self, scenario: str, measured: Measured) -> dict[str, Any]:
        """The record of what ``scenario`` measured for this runner, queue config, broker and repeat."""
        return make_record(
            runner=self.runner,
            scenario=scenario,
            repeat=self.repeat,
            config=self.config,
            broker=self.broker,
            measured=measured,
        )


Scenario = Callable[[ScenarioContext], Awaitable[dict[str, Any]]]


async def drain(
    ctx: ScenarioContext,
    follower: LedgerFollower,
    expected: int,
    label: str,
    on_progress: Callable[[int], None] | None = None,
) -> LedgerTally:
    """Wait (in a thread, so the event loop stays free) until every job is in the ledger or time is up;
    ``on_progress`` is called with the completed count at every poll, in that thread."""
    return await drain_ledger(follower, expected, ctx.profile, ctx.progress, label, on_progress)


async def drain_ledger(
    follower: LedgerFollower,
    expected: int,
    profile: Profile,
    progress: ProgressSink,
    label: str,
    on_progress: Callable[[int], None] | None = None,
) -> LedgerTally:
    bar = progress.bar(label, expected)

    def update(done: int) -> None:
        progress.update(bar, done)
        if on_progress is not None:
            on_progress(done)

    cancel = threading.Event()
    try:
        return await asyncio.to_thread(
            follower.wait,
            expected,
            drain_timeout_s=profile.drain_timeout_s,
            stall_timeout_s=profile.stall_timeout_s,
            on_progress=update,
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
        found.append(f"{what}: {overflow} requests were due while every connection was busy and not sent")
    return found


def open_loop_warnings(what: str, result: OpenLoopResult) -> list[str]:
    return send_warnings(what, result.sent, result.errors, result.error_samples, result.late)


def finish_window(tally: LedgerTally, began_wall: float) -> float:
    """From the first request to the last completion in the ledger (same host clock)."""
    if tally.last_finished_at is None:
        return 0.0
    return max(tally.last_finished_at - began_wall, 0.0)


async def warm_up(ctx: ScenarioContext) -> LedgerTally:
    """A few jobs end to end before measuring: proves the workers consume, and loads lazy imports."""
    follower = ctx.follower()
    async with ctx.client() as client:
        result = await loadgen.burst(
            lambda i: client.log(f"warmup {ctx.runner} #{i}"), ctx.profile.warmup_n, 4
        )
        ids = list(result.job_ids)
        if ctx.full_api:
            mail = await client.send_mail("warmup@example.com", "Warm-up", "Warm-up")
            # Waited for like the rest: a warm-up email finishing later would land in the next scenario's
            # ledger window (the in-API drain counts every event after its start).
            ids += [mail.job_id] if mail.job_id else []
    follower.expect(ids)
    return await drain(ctx, follower, len(ids), f"{ctx.key} warm-up")
