"""The fidelity check as a paired drain: the runner's workers and its library's own minimal worker
(``fbt_tasks.reference``) each drain N jobs of their own queue at the same time, on the same broker.

Why at the same time. A shared 2-core VM's own speed drifts by tens of percent from one second to the next,
idle or not, so two drains run one after the other differ by as much as the code under test does, and a
ratio of the two is mostly that drift. Drained together, both meet the same machine at every moment: the
ratio of their completion rates over the window where both are draining is what the project's code costs
the library, whatever the machine did meanwhile. Each side spends the same slot layout, so the scheduler
gives each the same share of the cores and a side that needs more CPU per job completes fewer.

The window leaves each side's start-up and tail out: it runs from the later of the two sides' ``TRIM``
quantile of completion times to the earlier of their ``1 - TRIM`` quantiles, and each side's rate is the
completions it logged inside it. The runner's own drain figure (drained/s) is measured alone, as before;
this measurement only yields the ratio.
"""

import asyncio
import bisect
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from fbt_bench.measuring.ledger_reader import POLL_S, LedgerFollower
from fbt_bench.scenarios.context import ScenarioContext
from fbt_bench.scenarios.probe_client import run_probe
from fbt_bench.scenarios.reference import STOP_TIMEOUT_S, enqueue, process_env, spawn_workers
from fbt_devstack.processes import ProcessGroup
from fbt_tasks.reference import Reference

# Each side's first and last tenth of completions fall outside the window: start-up and tail.
TRIM = 0.1
# Fewer completions than this on either side inside the window give no ratio worth printing.
MIN_IN_WINDOW = 10
# Never fewer jobs per side than this, however slow the runner drained alone.
MIN_PAIRED_N = 50


def paired_n(drained_alone_per_s: float, seconds: float) -> int:
    """Jobs per side: what the runner drained alone in ``seconds`` (``Profile.fidelity_s``)."""
    return max(MIN_PAIRED_N, round(drained_alone_per_s * seconds))


@dataclass(frozen=True, slots=True)
class SharedWindow:
    """The stretch of time both sides were draining, and what each completed inside it."""

    start: float
    end: float
    project: int
    reference: int

    @property
    def seconds(self) -> float:
        return self.end - self.start


def quantile(ordered: list[float], q: float) -> float:
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def shared_window(project: list[float], reference: list[float], trim: float = TRIM) -> SharedWindow | None:
    """The window both sides drained in (``project``/``reference``: sorted completion times); None where
    their trimmed spans do not overlap or either side completed too few jobs inside the overlap."""
    if not project or not reference:
        return None
    start = max(quantile(project, trim), quantile(reference, trim))
    end = min(quantile(project, 1 - trim), quantile(reference, 1 - trim))
    if end <= start:
        return None

    def inside(times: list[float]) -> int:
        return bisect.bisect_right(times, end) - bisect.bisect_left(times, start)

    window = SharedWindow(start, end, inside(project), inside(reference))
    return window if min(window.project, window.reference) >= MIN_IN_WINDOW else None


@dataclass(frozen=True, slots=True)
class PairedDrain:
    """One paired drain, as the drain record's ``extra.reference`` keeps it (``completed``/``duplicated``:
    the library's side, as for every reference; ``project_*``: the runner's side)."""

    n: int
    completed: int
    duplicated: int
    project_completed: int
    project_duplicated: int
    window_s: float | None
    project_in_window: int
    reference_in_window: int
    # Each side's completions per second inside the shared window (None without one): comparable only
    # with each other, since each side had half the machine.
    project_per_s: float | None
    reference_per_s: float | None
    layout: str
    options: dict[str, Any]
    method: str = "paired"

    @property
    def fidelity(self) -> float | None:
        """Project ÷ library over the same window; None without a window."""
        if self.project_per_s is None or not self.reference_per_s:
            return None
        return round(self.project_per_s / self.reference_per_s, 3)

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


def paired(n: int, project: LedgerFollower, library: LedgerFollower, reference: Reference) -> PairedDrain:
    """The record of a paired drain from its two followers (each expecting only its own side's ids)."""
    ours, theirs = project.tally(n), library.tally(n)
    window = shared_window(project.finish_times(), library.finish_times())

    def rate(count: int) -> float | None:
        return round(count / window.seconds, 2) if window is not None else None

    return PairedDrain(
        n=n,
        completed=theirs.completed,
        duplicated=theirs.duplicated,
        project_completed=ours.completed,
        project_duplicated=ours.duplicated,
        window_s=round(window.seconds, 3) if window is not None else None,
        project_in_window=window.project if window is not None else 0,
        reference_in_window=window.reference if window is not None else 0,
        project_per_s=rate(window.project) if window is not None else None,
        reference_per_s=rate(window.reference) if window is not None else None,
        layout=reference.layout,
        options=dict(reference.options),
    )


async def paired_drain(ctx: ScenarioContext, reference: Reference, n: int) -> PairedDrain:
    """Pre-fill N jobs through the runner's client and N through the library's own, start both sets of
    workers at once, and wait until both sides are done (or time is up); the runner's workers stay up."""
    deployment, label = ctx.deployment, f"{ctx.tag('drain')} paired"
    settings = deployment.settings
    workdir = deployment.ledger_path.parent / "reference"
    env = process_env(reference, settings, workdir)
    ctx.progress.phase(f"{label}: stopping the workers, pre-filling {n} jobs for each side")
    deployment.stop_workers()
    project, library = (
        LedgerFollower.from_end(settings.ledger_file),
        LedgerFollower.from_end(settings.ledger_file),
    )
    group, cancel = ProcessGroup(), threading.Event()
    try:
        filled = await run_probe(deployment, ["enqueue", "--n", str(n), "--ids"])
        project.expect(filled["ids"])
        ids, _ = await asyncio.to_thread(enqueue, reference, env, n)
        library.expect(ids)
        ctx.progress.phase(f"{label}: the runner's workers beside the library's own ({reference.layout})")
        # The library's minimal worker starts in a fraction of the time the runner's takes (less to
        # import, no readiness check): it is started once the runner's first job is done, or it would
        # drain alone meanwhile.
        starting = asyncio.ensure_future(asyncio.to_thread(deployment.start_workers))
        await asyncio.to_thread(_first_completion, project, starting, cancel)
        spawn_workers(group, reference, env, workdir)
        await starting
        await asyncio.to_thread(_wait_both, ctx, (project, library), n, group, cancel)
    finally:
        # On Ctrl-C the await is cancelled but not its thread: tell it to stop so teardown is not held up.
        cancel.set()
        group.stop_all(timeout_s=STOP_TIMEOUT_S)
        await asyncio.to_thread(deployment.start_workers)
    return paired(n, project, library, reference)


def _first_completion(
    project: LedgerFollower, starting: "asyncio.Future[None]", cancel: threading.Event
) -> None:
    """Poll until the runner's side has completed a job, its workers' start failed, or ``cancel`` is set."""
    while not project.completed_count() and not cancel.is_set():
        if starting.done() and starting.exception() is not None:
            return
        project.poll()
        time.sleep(POLL_S / 10)


def _wait_both(
    ctx: ScenarioContext,
    sides: tuple[LedgerFollower, LedgerFollower],
    n: int,
    group: ProcessGroup,
    cancel: threading.Event,
) -> None:
    """Poll both sides' followers until each completed N, the drain timeout passes, nothing new arrives for
    the stall timeout, a reference worker exits (its side would never finish), or ``cancel`` is set."""
    bar = ctx.progress.bar(f"{ctx.tag('drain')} paired drained (both sides)", 2 * n)
    deadline = time.monotonic() + ctx.profile.drain_timeout_s
    last_change = time.monotonic()
    stall_s = ctx.profile.stall_timeout_s
    try:
        while True:
            if sum(side.poll() for side in sides):
                last_change = time.monotonic()
            done = sum(side.completed_count() for side in sides)
            ctx.progress.update(bar, done)
            now = time.monotonic()
            if done >= 2 * n or now >= deadline or group.exited() or cancel.is_set():
                return
            if stall_s is not None and now - last_change >= stall_s:
                return
            time.sleep(POLL_S)
    finally:
        ctx.progress.close(bar)
