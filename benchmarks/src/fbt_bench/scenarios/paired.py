"""The fidelity check as a paired drain: the runner's workers and its library's own minimal worker
(``fbt_tasks.reference``) each drain N jobs of their own queue at the same time, on the same broker.

Why at the same time. A shared 2-core VM's own speed drifts by tens of percent from one second to the next,
idle or not, so two drains run one after the other differ by as much as the code under test does, and a
ratio of the two is mostly that drift. Drained together, both meet the same machine at every moment: the
ratio of their completion rates over the window where both are draining is what the project's code costs
the library, whatever the machine did meanwhile. Each side spends the same slot layout in one session (the
kernel's autogroup scheduling shares the cores between sessions), so each gets the same share of the cores
and a side that needs more CPU per job completes fewer.

Both sides' workers are started and proven to consume, then paused while both sides' jobs are queued,
then resumed at the same moment (``paired_drain`` says why). The window runs from the later of the two
sides' ``TRIM`` quantiles of completion times to the earlier of their ``1 - TRIM`` quantiles, and each
side's rate is the completions it logged inside it. The runner's own drain figure (drained/s) is measured
alone, as before; this measurement only yields the ratio.
"""

import asyncio
import bisect
import contextlib
import itertools
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import psutil

from fbt_bench.measuring.ledger_reader import POLL_S, LedgerFollower
from fbt_bench.measuring.sampler import ProcSet, ResourceSampler
from fbt_bench.scenarios.context import ScenarioContext
from fbt_bench.scenarios.probe_client import run_probe
from fbt_bench.scenarios.reference import (
    STOP_TIMEOUT_S,
    WORKERS_NAME,
    enqueue,
    fidelity,
    process_env,
    spawn_workers,
)
from fbt_bench.topology import Deployment
from fbt_devstack.processes import ProcessGroup
from fbt_tasks.reference import Reference

# Each side's first and last tenth of completions fall outside the window: start-up and tail.
TRIM = 0.1
# Fewer completions than this on either side inside the window give no ratio worth printing.
MIN_IN_WINDOW = 10
# (epoch seconds, the runner's workers' cumulative CPU seconds, the library's workers' cumulative CPU seconds)
CpuSample = tuple[float, float, float]


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
    # Seconds from resuming both sides' workers to each side's first completion.
    project_first_s: float | None
    reference_first_s: float | None
    window_s: float | None
    project_in_window: int
    reference_in_window: int
    # Each side's completions per second inside the shared window (None without one): comparable only
    # with each other, since each side had half the machine.
    project_per_s: float | None
    reference_per_s: float | None
    # Each side's workers' CPU µs per job inside the window (their process trees, sampled while draining;
    # the broker is shared and left out): unlike the rates, it does not depend on how the scheduler shared
    # the cores between the two sides. None where the window or the samples are missing.
    project_cpu_us_per_job: float | None
    reference_cpu_us_per_job: float | None
    layout: str
    options: dict[str, Any]
    method: str = "paired"

    @property
    def cpu_fidelity(self) -> float | None:
        """Library ÷ project CPU per job over the same window (below 1: the project costs the library more)."""
        if self.project_cpu_us_per_job is None or self.reference_cpu_us_per_job is None:
            return None
        return fidelity(self.reference_cpu_us_per_job, self.project_cpu_us_per_job)

    @property
    def fidelity(self) -> float | None:
        """Project ÷ library over the same window; None without a window."""
        if self.project_per_s is None or self.reference_per_s is None:
            return None
        return fidelity(self.project_per_s, self.reference_per_s)

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


def paired(
    n: int,
    project: LedgerFollower,
    library: LedgerFollower,
    reference: Reference,
    started_at: float | None = None,
    cpu: Sequence[CpuSample] = (),
) -> PairedDrain:
    """The record of a paired drain from its two followers (each expecting only its own side's ids);
    ``started_at``: when both sides' workers were resumed on their full queues (epoch seconds)."""
    ours, theirs = project.tally(n), library.tally(n)
    ours_times, theirs_times = project.finish_times(), library.finish_times()
    window = shared_window(ours_times, theirs_times)

    def rate(count: int) -> float | None:
        return round(count / window.seconds, 2) if window is not None else None

    return PairedDrain(
        n=n,
        completed=theirs.completed,
        duplicated=theirs.duplicated,
        project_completed=ours.completed,
        project_duplicated=ours.duplicated,
        project_first_s=_since(ours_times, started_at),
        reference_first_s=_since(theirs_times, started_at),
        window_s=round(window.seconds, 3) if window is not None else None,
        project_in_window=window.project if window is not None else 0,
        reference_in_window=window.reference if window is not None else 0,
        project_per_s=rate(window.project) if window is not None else None,
        reference_per_s=rate(window.reference) if window is not None else None,
        project_cpu_us_per_job=cpu_per_job(cpu, window, 0),
        reference_cpu_us_per_job=cpu_per_job(cpu, window, 1),
        layout=reference.layout,
        options=dict(reference.options),
    )


def cpu_at(samples: Sequence[CpuSample], moment: float, side: int) -> float | None:
    """One side's cumulative CPU seconds at ``moment``, interpolated between the samples around it."""
    for before, after in itertools.pairwise(samples):
        if before[0] <= moment <= after[0]:
            span = after[0] - before[0]
            share = (moment - before[0]) / span if span > 0 else 0.0
            return before[side + 1] + share * (after[side + 1] - before[side + 1])
    return None


def cpu_per_job(samples: Sequence[CpuSample], window: SharedWindow | None, side: int) -> float | None:
    if window is None:
        return None
    start, end = cpu_at(samples, window.start, side), cpu_at(samples, window.end, side)
    jobs = (window.project, window.reference)[side]
    if start is None or end is None or not jobs:
        return None
    return round((end - start) * 1e6 / jobs, 1)


def _since(times: list[float], moment: float | None) -> float | None:
    return round(times[0] - moment, 3) if times and moment is not None else None


async def paired_drain(ctx: ScenarioContext, reference: Reference, n: int) -> PairedDrain:
    """Start both sides' workers and prove each consumes (a job per slot); pause them (SIGSTOP); queue N
    jobs on each side, the runner's through its client and the library's through its own; resume both
    (SIGCONT) at the same moment, and wait until both sides are done (or time is up). The runner's
    workers stay up.

    Why the pause. Their start-ups differ (the library's minimal worker imports less, the runner's waits
    for its readiness check) and so do their clients' enqueue speeds, by more than a fast library takes to
    drain N jobs: started on full queues, or filled while consuming, one side would drain alone. Paused
    workers hold their connections; the pause lasts only as long as the queueing.
    """
    deployment, label = ctx.deployment, f"{ctx.tag('drain')} paired"
    settings = deployment.settings
    workdir = deployment.ledger_path.parent / "reference"
    env = process_env(reference, settings, workdir)
    ctx.progress.phase(f"{label}: starting both sides' workers ({reference.layout}), a job per slot each")
    deployment.stop_workers()
    primed = (LedgerFollower.from_end(settings.ledger_file), LedgerFollower.from_end(settings.ledger_file))
    sides = (LedgerFollower.from_end(settings.ledger_file), LedgerFollower.from_end(settings.ledger_file))
    group, cancel = ProcessGroup(), threading.Event()
    paused: list[psutil.Process] = []
    cpu: list[CpuSample] = []
    resumed_at: float | None = None
    try:
        await _fill(deployment, reference, env, settings.slots, primed)
        spawn_workers(group, reference, env, workdir)
        await asyncio.to_thread(deployment.start_workers)
        await asyncio.to_thread(
            _wait_all, ctx, primed, settings.slots, group, cancel, "both sides' first jobs"
        )
        ctx.progress.phase(f"{label}: both sides' workers paused, queueing {n} jobs on each side")
        workers = [
            pid for proc_set in deployment.groups() if proc_set.name == "workers" for pid in proc_set.roots
        ]
        paused = _signal_trees([*workers, *group.pids(WORKERS_NAME)], signal.SIGSTOP)
        await _fill(deployment, reference, env, n, sides)
        # Sampled at each poll of the wait below, not by the sampler's own thread (an interval it never
        # reaches); started here for the baseline, before any job of the N runs.
        sampler = ResourceSampler(
            lambda: [ProcSet("project", workers), ProcSet("reference", group.pids(WORKERS_NAME))],
            interval_s=ctx.profile.drain_timeout_s,
        ).start()
        resumed_at = time.time()
        _signal(paused, signal.SIGCONT)

        def sample() -> None:
            usage = sampler.snapshot()
            cpu.append((time.time(), usage["project"]["cpu_s"], usage["reference"]["cpu_s"]))

        sample()
        try:
            await asyncio.to_thread(
                _wait_all, ctx, sides, n, group, cancel, "paired drained (both sides)", sample
            )
        finally:
            sampler.stop()
    finally:
        # Never leave a process stopped; on Ctrl-C the await is cancelled but not its thread: stop it too.
        _signal(paused, signal.SIGCONT)
        cancel.set()
        group.stop_all(timeout_s=STOP_TIMEOUT_S)
        await asyncio.to_thread(deployment.start_workers)
    return paired(n, sides[0], sides[1], reference, resumed_at, cpu)


def _signal_trees(roots: list[int], sig: int) -> list[psutil.Process]:
    """Send ``sig`` to every process of the trees under ``roots``, children first; the processes signalled."""
    found: list[psutil.Process] = []
    for root in roots:
        with contextlib.suppress(psutil.NoSuchProcess):
            parent = psutil.Process(root)
            found += [*parent.children(recursive=True), parent]
    _signal(found, sig)
    return found


def _signal(processes: list[psutil.Process], sig: int) -> None:
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(sig)


async def _fill(
    deployment: Deployment,
    reference: Reference,
    env: dict[str, str],
    n: int,
    followers: tuple[LedgerFollower, ...],
) -> None:
    """Queue ``n`` jobs on each side at the same time; each side's follower then expects its own ids."""
    ours, (theirs, _) = await asyncio.gather(
        run_probe(deployment, ["enqueue", "--n", str(n), "--ids"]),
        asyncio.to_thread(enqueue, reference, env, n),
    )
    followers[0].expect(ours["ids"])
    followers[1].expect(theirs)


def _wait_all(
    ctx: ScenarioContext,
    followers: tuple[LedgerFollower, ...],
    n: int,
    group: ProcessGroup,
    cancel: threading.Event,
    what: str,
    on_poll: Callable[[], None] | None = None,
) -> None:
    """Poll the followers until each completed ``n``, the drain timeout passes, nothing new arrives for
    the stall timeout, a reference worker exits (its side would never finish), or ``cancel`` is set."""
    expected = n * len(followers)
    bar = ctx.progress.bar(f"{ctx.tag('drain')} {what}", expected)
    deadline = time.monotonic() + ctx.profile.drain_timeout_s
    last_change = time.monotonic()
    stall_s = ctx.profile.stall_timeout_s
    try:
        while True:
            if sum(follower.poll() for follower in followers):
                last_change = time.monotonic()
            if on_poll is not None:
                on_poll()
            done = sum(follower.completed_count() for follower in followers)
            ctx.progress.update(bar, done)
            now = time.monotonic()
            if done >= expected or now >= deadline or group.exited() or cancel.is_set():
                return
            if stall_s is not None and now - last_change >= stall_s:
                return
            time.sleep(POLL_S)
    finally:
        ctx.progress.close(bar)
