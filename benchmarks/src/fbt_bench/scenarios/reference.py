"""The fidelity reference's drain: the runner's library, its own minimal worker, the same N jobs.

``reference_drain`` stops the runner's workers, enqueues N jobs with the library's own client
(``Reference.enqueue``), starts the library's own worker processes (``Reference.workers``) at the runner's
layout and on its broker, counts completions from the same ledger, and puts the runner's workers back. The
drain scenario runs it beside the runner's own drain in every repeat, alternating which goes first, and
records project ÷ reference as ``extra.fidelity`` (``fbt_tasks.reference`` says what the reference is).
"""

import json
import os
import shlex
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fbt_bench.measuring.ledger_reader import LedgerFollower, LedgerTally
from fbt_bench.measuring.sampler import ProcSet, ResourceSampler
from fbt_bench.scenarios.draining import Draining, Ready, draining
from fbt_bench.scenarios.record import cpu_us_per_task
from fbt_devstack.processes import ProcessGroup, log_tail
from fbt_tasks.reference import JSONValue, Reference, reference_env
from fbt_tasks.settings import Settings

ENQUEUE_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class ReferenceDrain:
    """One reference drain, as the drain record's ``extra.reference`` keeps it."""

    n: int
    completed: int
    duplicated: int
    drained_per_s: float
    first_to_last_s: float
    start_to_first_s: float | None
    # CPU µs per task by group (workers, broker, total) from the first completion seen on (the workers'
    # start-up left out, as for the runner's drain); None where nothing completed after that look.
    cpu_us_per_task: dict[str, float | None] | None
    enqueue_cpu_us: float
    layout: str
    options: dict[str, Any]

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


class ReferenceFailed(RuntimeError):
    """The reference's enqueue script or a worker failed; the message carries its output."""


def enqueue(reference: Reference, env: dict[str, str], n: int) -> tuple[list[str], float]:
    """Run the reference's enqueue script; return the ids it queued and its CPU µs per enqueue."""
    done = subprocess.run(
        [*reference.enqueue, "--n", str(n)],
        env=env,
        capture_output=True,
        timeout=ENQUEUE_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise ReferenceFailed(f"reference enqueue exited {done.returncode}: {done.stderr.decode()[-1500:]}")
    out = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return [str(i) for i in out["ids"]], float(out["cpu_us_per_enqueue"])


def process_env(
    reference: Reference, settings: Settings, workdir: Path, options: Mapping[str, JSONValue] | None = None
) -> dict[str, str]:
    """The environment of the reference's enqueue script and workers; their log lines go to ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    return {**os.environ, **reference_env(settings, reference, workdir / "reference-log.txt", options)}


WORKERS_NAME = "reference"


def spawn_workers(group: ProcessGroup, reference: Reference, env: dict[str, str], workdir: Path) -> None:
    """Start the reference's worker processes in ``group`` as one tree in one session, logging to
    ``workdir``.

    One session, as the runner's workers are one (``fbt-worker-<runner>`` starts its processes as
    children): with the kernel's autogroup scheduling, on by default, the cores are shared between
    sessions, not processes, so eight workers in eight sessions would take more of a busy machine than the
    runner's eight in one, and the two drains would not be held to the same terms.
    """
    argv = list(reference.workers[0])
    if len(reference.workers) > 1:
        jobs = " ".join(f"{shlex.join(worker)} &" for worker in reference.workers)
        argv = ["/bin/sh", "-c", f"{jobs} wait"]
    group.spawn(WORKERS_NAME, argv, env=env, log_path=workdir / f"{WORKERS_NAME}.log")


def reference_drain(
    reference: Reference,
    settings: Settings,
    workdir: Path,
    n: int,
    *,
    broker_pids: list[int],
    drain_timeout_s: float,
    stall_timeout_s: float | None = None,
    options: Mapping[str, JSONValue] | None = None,
) -> ReferenceDrain:
    """Drain ``n`` jobs through the library's own worker (the runner's workers must be stopped); ``options``
    replaces the reference's own (``Reference.without_status_writes``)."""
    env = process_env(reference, settings, workdir, options)
    follower = LedgerFollower.from_end(settings.ledger_file)
    ids, enqueue_us = enqueue(reference, env, n)
    follower.expect(ids)
    group = ProcessGroup()

    def groups() -> list[ProcSet]:
        return [
            ProcSet("workers", group.pids(WORKERS_NAME)),
            ProcSet("broker", broker_pids),
        ]

    first: list[Ready] = []

    def at_first(done: int) -> None:
        # No readiness check of its own: the first completion marks the end of the workers' start-up.
        if done and not first:
            first.append(Ready(done, time.monotonic(), sampler.snapshot()))

    try:
        with ResourceSampler(groups) as sampler:
            started = time.time()
            spawn_workers(group, reference, env, workdir)
            tally = follower.wait(
                len(ids),
                drain_timeout_s=drain_timeout_s,
                stall_timeout_s=stall_timeout_s,
                on_progress=at_first,
            )
            resources = sampler.stop()
            ended = time.monotonic()
        exited = group.exited()
        if exited and tally.completed < len(ids):
            log = log_tail(workdir / f"{WORKERS_NAME}.log")
            raise ReferenceFailed(f"the reference's workers exited {exited[WORKERS_NAME]}: {log}")
    finally:
        group.stop_all(timeout_s=STOP_TIMEOUT_S)
    window = draining(first[0], ended, resources, tally.completed) if first else None
    used = reference.options if options is None else options
    return summarize(reference, tally, n, started, window, enqueue_us, dict(used))


def summarize(
    reference: Reference,
    tally: LedgerTally,
    n: int,
    started: float,
    window: Draining | None,
    enqueue_us: float,
    options: dict[str, Any],
) -> ReferenceDrain:
    first, last = tally.first_finished_at, tally.last_finished_at
    span = max(last - first, 0.0) if first is not None and last is not None else 0.0
    return ReferenceDrain(
        n=n,
        completed=tally.completed,
        duplicated=tally.duplicated,
        drained_per_s=round(tally.completed / span, 2) if span > 0 else 0.0,
        first_to_last_s=round(span, 3),
        start_to_first_s=round(first - started, 3) if first is not None else None,
        cpu_us_per_task=cpu_us_per_task(window.usage, window.tasks) if window else None,
        enqueue_cpu_us=round(enqueue_us, 1),
        layout=reference.layout,
        options=options,
    )


def fidelity(project_per_s: float, reference_per_s: float) -> float | None:
    """Project ÷ reference drained/s; None where the reference drained nothing."""
    return round(project_per_s / reference_per_s, 3) if reference_per_s > 0 else None
