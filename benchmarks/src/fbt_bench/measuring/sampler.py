"""CPU seconds and peak memory per process group (api, workers, broker, smtp, loadgen), sampled with psutil.

Each group is a list of root pids; a sample walks each root's whole process tree, so prefork children,
RQ's per-job work-horses and Dramatiq's worker processes are all counted. A process that exits between
samples is not lost: once its parent reaps it, its CPU moves into the parent's ``children_user`` /
``children_system`` counters, which are counted, and its own last reading is dropped so nothing is
counted twice. Peak PSS is the largest sum of proportional set sizes seen at one sample: a page shared by
k processes (the copy-on-write pages of prefork or forking workers) counts 1/k in each, so the sum is what
the group really holds. Peak RSS (the same sum of resident sizes, shared pages once per process, as ``ps``
counts them) comes from the same read and is kept beside it. ``processes`` is the most processes seen in
the group at one sample: 0 means the group was not measured (nothing of it ran here).
"""

import os
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

import psutil

# CPU is cumulative, so the interval only bounds how finely peak RSS is seen; sampling is not free here.
INTERVAL_S = 0.5
MB = 1024 * 1024


class ProcUsage(TypedDict):
    cpu_s: float
    peak_pss_mb: float
    peak_rss_mb: float
    processes: int


@dataclass(frozen=True, slots=True)
class ProcSet:
    """A named process group to sample (api, workers, broker, ...): its root pids and, with ``tree``, their
    descendants."""

    name: str
    roots: Sequence[int]
    tree: bool = True  # False for the harness itself, whose children are the stack being measured


@dataclass(slots=True)
class _ProcSetState:
    baseline: dict[int, float] = field(default_factory=dict)  # cpu at the start, per pid seen then
    last: dict[int, float] = field(default_factory=dict)  # latest cpu reading per pid
    parents: dict[int, int] = field(default_factory=dict)
    gone: dict[int, float] = field(default_factory=dict)  # exited pids nobody in the group will account for
    peak_rss: int = 0
    peak_pss: int = 0
    processes: int = 0


class ResourceSampler:
    """Samples in a background thread between ``start()`` and ``stop()``; ``stop()`` returns the usage."""

    def __init__(self, groups: Callable[[], Sequence[ProcSet]], interval_s: float = INTERVAL_S) -> None:
        self._groups = groups
        self._interval_s = interval_s
        self._states: dict[str, _ProcSetState] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._sampling = threading.Lock()  # one sample at a time, so readings are applied in order
        self._processes: dict[int, psutil.Process] = {}

    def start(self) -> "ResourceSampler":
        self._sample(initial=True)
        self._thread = threading.Thread(target=self._run, name="resource-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict[str, ProcUsage]:
        """Stop sampling (idempotent) and return the usage over the whole window."""
        if not self._stop.is_set():
            self._stop.set()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._sample(initial=False)
        return self.usage()

    def __enter__(self) -> "ResourceSampler":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def snapshot(self) -> dict[str, ProcUsage]:
        """Sample now and return the usage so far (differences of snapshots give per-window usage)."""
        self._sample(initial=False)
        return self.usage()

    def usage(self) -> dict[str, ProcUsage]:
        with self._lock:
            return {name: _usage(state) for name, state in self._states.items()}

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._sample(initial=False)

    def _sample(self, *, initial: bool) -> None:
        with self._sampling:
            self._sample_locked(initial=initial)

    def _sample_locked(self, *, initial: bool) -> None:
        # Groups are re-read every time: workers may be restarted (new pids) during a run.
        groups = self._groups()
        # One scan of the process table per sample, shared by every group (a scan per root would cost milliseconds).
        parent_of = _parent_map() if any(group.tree and group.roots for group in groups) else {}
        readings = {group.name: self._read_group(group, parent_of) for group in groups}
        with self._lock:
            for name, (cpu, parents, rss, pss) in readings.items():
                state = self._states.setdefault(name, _ProcSetState())
                if initial:
                    state.baseline = dict(cpu)
                _account_exits(state, cpu)
                state.last.update(cpu)
                state.parents.update(parents)
                state.peak_rss = max(state.peak_rss, rss)
                state.peak_pss = max(state.peak_pss, pss)
                state.processes = max(state.processes, len(cpu))

    def _read_group(
        self, group: ProcSet, parent_of: dict[int, int]
    ) -> tuple[dict[int, float], dict[int, int], int, int]:
        cpu: dict[int, float] = {}
        parents: dict[int, int] = {}
        rss = pss = 0
        pids = _tree_pids(group.roots, parent_of) if group.tree else set(group.roots)
        for pid in pids:
            try:
                proc = self._process(pid)
                with proc.oneshot():
                    times = proc.cpu_times()
                    used = times.user + times.system
                    if group.tree:
                        used += times.children_user + times.children_system
                    cpu[pid] = used
                    parents[pid] = parent_of.get(pid) or proc.ppid()
                    rss_now, pss_now = _memory(proc)
                    rss += rss_now
                    pss += pss_now
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                self._processes.pop(pid, None)
                continue
        return cpu, parents, rss, pss

    def _process(self, pid: int) -> psutil.Process:
        # Kept between samples: psutil.Process checks pid reuse by creation time, which costs a read.
        proc = self._processes.get(pid)
        if proc is None or not proc.is_running():
            proc = self._processes[pid] = psutil.Process(pid)
        return proc


def _memory(proc: psutil.Process) -> tuple[int, int]:
    """RSS and PSS in bytes; PSS falls back to RSS where smaps cannot be read (another user's process)."""
    try:
        full = proc.memory_full_info()
    except psutil.AccessDenied:
        rss = proc.memory_info().rss
        return rss, rss
    return full.rss, getattr(full, "pss", full.rss)


def _parent_map() -> dict[int, int]:
    parent_of: dict[int, int] = {}
    for proc in psutil.process_iter(["ppid"]):
        ppid = proc.info.get("ppid")
        if ppid is not None:
            parent_of[proc.pid] = ppid
    return parent_of


def _tree_pids(roots: Sequence[int], parent_of: dict[int, int]) -> set[int]:
    """The roots and all their descendants, from one snapshot of the process table."""
    children: dict[int, list[int]] = defaultdict(list)
    for pid, ppid in parent_of.items():
        children[ppid].append(pid)
    found: set[int] = set()
    pending = [root for root in roots if root in parent_of]
    while pending:
        pid = pending.pop()
        if pid not in found:
            found.add(pid)
            pending.extend(children.get(pid, ()))
    return found


def _account_exits(state: _ProcSetState, current: Mapping[int, float]) -> None:
    for pid in [pid for pid in state.last if pid not in current]:
        last = state.last.pop(pid)
        start = state.baseline.pop(pid, 0.0)
        parent = state.parents.pop(pid, None)
        if parent is not None and parent in current:
            # The parent reaped it and now carries its whole CPU in children_*, including what it had used
            # before the baseline, which must not count.
            state.gone[pid] = state.gone.get(pid, 0.0) - start
        else:
            state.gone[pid] = state.gone.get(pid, 0.0) + last - start


def _usage(state: _ProcSetState) -> ProcUsage:
    cpu = sum(value - state.baseline.get(pid, 0.0) for pid, value in state.last.items())
    cpu += sum(state.gone.values())
    return ProcUsage(
        cpu_s=round(max(cpu, 0.0), 3),
        peak_pss_mb=round(state.peak_pss / MB, 1),
        peak_rss_mb=round(state.peak_rss / MB, 1),
        processes=state.processes,
    )


def own_process() -> ProcSet:
    """The harness process alone: the load generator runs here, its children are what is measured."""
    return ProcSet("loadgen", [os.getpid()], tree=False)
