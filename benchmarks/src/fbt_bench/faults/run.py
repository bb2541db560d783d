"""Running cells: one on a fresh stack, a whole pass several at a time, and the records they produce.

How long to watch after a fault comes from the configuration in force (the runner's ``describe()``) and
the runner's own redelivery bound: the bound when it is within ``patience_s``, else a fixed ``watch_s``,
and the notes say which. Where the jobs still missing at the end wait is read through the runner's
``FaultModel.holdings`` and recorded in ``unfinished``.
"""

import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import Any

from fbt_bench.faults.inject import POISON_WAIT_S
from fbt_bench.faults.model import ALONE_FAULTS, CONFIGS, SHORT, Cancelled, Cell, FaultParams, matrix
from fbt_bench.faults.partition import cut_length_s, silence_bound_s
from fbt_bench.faults.trials import identity, run_cell, run_trials
from fbt_bench.measuring.environment import describe_runner
from fbt_bench.progress import NullProgress, ProgressSink
from fbt_devstack.processes import log_tail
from fbt_tasks.registry import configure, load_runner, system_key
from fbt_tasks.runner import QueueConfigName
from fbt_tasks.settings import Settings

__all__ = ["Eta", "Interrupted", "compare_pass", "not_measured", "parameters", "run_cell", "run_faults"]

# A trial with nothing to wait for: the burst, the grace period and a short watch; the stack's start and stop
# (most of a short cell's first trial) and a private RabbitMQ node's boot and stop come on top when the trial
# starts a stack. Only estimates, to order the cells and to print the time left, which ``Eta`` rescales by
# what the finished trials really took.
QUICK_TRIAL_S = 10.0
STACK_START_STOP_S = 15.0
# api-deploy: a graceful stop, a new API process's start and the watch after it.
API_RESTART_S = 25.0
RABBITMQ_BOOT_S = 20.0


def failed_cell(cell: Cell, error: BaseException, workdir: Path, params: FaultParams) -> dict[str, Any]:
    """A record that says the cell could not be measured (never a silent gap in the table)."""
    tail = log_tail(workdir / "logs" / "worker.log", lines=5) if (workdir / "logs").exists() else ""
    return {
        **identity(cell, cell.seed(params.seed)),
        "expected": 0,
        "lost": 0,
        "held": 0,
        "failed": 0,
        "reexecuted": 0,
        "duplicate_effects": 0,
        "skipped_redeliveries": 0,
        "recovery_s": None,
        "mechanism": "not measured",
        "notes": f"NOT MEASURED: {type(error).__name__}: {error}"[:500],
        "error": True,
        "log_tail": tail[-1000:],
    }


def stack_key(cell: Cell) -> tuple[str, str, str, str, str]:
    """What names a cell apart from its trial: its trials, and only they, may share a stack.

    Different faults of one runner could share one too (the same settings) and would save most of the
    remaining starts, but a fault's aftermath may sit where no per-job read looks (a worker's in-memory
    state, a library's bookkeeping in Redis): a trial tried that way lost jobs that its own fault, alone on
    a stack, did not. A cell's trials repeat one fault, so what one leaves the next one meets anyway.
    """
    return (cell.runner, cell.broker_name, cell.config, cell.fault, cell.variant)


def stack_groups(cells: list[Cell]) -> list[list[Cell]]:
    """``cells`` split by ``stack_key``, each group's trials in order."""
    groups: dict[tuple[str, str, str, str, str], list[Cell]] = {}
    for cell in cells:
        groups.setdefault(stack_key(cell), []).append(cell)
    return list(groups.values())


def run_faults(
    cells: list[Cell],
    params: FaultParams,
    workroot: Path | None = None,
    progress: ProgressSink | None = None,
) -> list[dict[str, Any]]:
    """Run ``cells`` in groups that share a stack (``stack_groups``, run by ``run_trials``), ``params.parallel``
    groups at a time (most of a trial is waiting on a library's timeout); the groups of a fault whose record
    is a rate (``ALONE_FAULTS``) afterwards, one at a time.

    The longest-expected groups start first so the lanes finish together. Each finished trial prints a line
    with the trials done, the total and an estimate of the time left (``Eta``); its record keeps its wall time
    in ``cell_s``. Ctrl-C stops every group (each tears its stack down) and re-raises; a trial that fails
    becomes a record marked NOT MEASURED. Without a ``workroot`` the stacks work in a temporary directory,
    removed afterwards.
    """
    if workroot is None:
        with tempfile.TemporaryDirectory(prefix="fbt-faults-") as tmp:
            return run_faults(cells, params, Path(tmp), progress)
    progress = progress or NullProgress()
    cancel = threading.Event()
    groups = stack_groups(cells)
    expected = {
        cell: likely_wait_s(cell, params, starts_stack=i == 0)
        for group in groups
        for i, cell in enumerate(group)
    }
    eta = Eta(expected, max(1, params.parallel))
    order = sorted(groups, key=lambda group: sum(expected[cell] for cell in group), reverse=True)
    results: dict[Cell, dict[str, Any]] = {}
    bar = progress.bar("fault cells", len(cells))

    def one(group: list[Cell]) -> None:
        first = group[0]
        workdir = workroot / "-".join(stack_key(first)).strip("-")
        for cell, outcome, stack_dir in run_trials(
            group, params, workdir, cancel=cancel, progress=progress, started=eta.start
        ):
            if isinstance(outcome, Exception):
                record = failed_cell(cell, outcome, stack_dir, params)
            else:
                record = outcome.record
            record["cell_s"] = round(eta.finish(cell), 1)
            results[cell] = record
            progress.update(bar, len(results))
            progress.phase(
                f"faults [{len(results)}/{len(cells)}, {eta.left()}] {cell.tag}: {summary(record)}"
            )

    def guarded(group: list[Cell]) -> None:
        if cancel.is_set():
            return  # picked up after Ctrl-C: no stack to start, nothing to measure
        try:
            one(group)
        except Cancelled:
            return

    pool = ThreadPoolExecutor(max_workers=max(1, params.parallel), thread_name_prefix="fault")
    try:
        futures = [pool.submit(guarded, group) for group in order if group[0].fault not in ALONE_FAULTS]
        for future in futures:
            future.result()
        # A rate is measured only with nothing else running: these groups go one at a time, last.
        for group in order:
            if group[0].fault in ALONE_FAULTS:
                pool.submit(guarded, group).result()
    except KeyboardInterrupt as exc:
        cancel.set()
        pool.shutdown(wait=True, cancel_futures=True)
        # The cells that finished keep their records: the caller writes a partial result, not nothing.
        raise Interrupted([results[cell] for cell in cells if cell in results]) from exc
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        progress.close(bar)
    return [results[cell] for cell in cells if cell in results]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during a pass, with the records of the cells that had finished."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        super().__init__(f"interrupted after {len(records)} cells")
        self.records = records


class Eta:
    """The time a pass has left: each cell's expected length (``likely_wait_s``), scaled by how long the
    finished cells took against their own expectation, spread over the lanes."""

    def __init__(self, expected: dict[Cell, float], lanes: int) -> None:
        self.expected = expected
        self.lanes = lanes
        self._started: dict[Cell, float] = {}
        self._took: dict[Cell, float] = {}
        self._lock = threading.Lock()

    def start(self, cell: Cell) -> None:
        with self._lock:
            self._started[cell] = time.monotonic()

    def finish(self, cell: Cell) -> float:
        """Mark ``cell`` done; returns its wall time in s."""
        with self._lock:
            self._took[cell] = time.monotonic() - self._started[cell]
            return self._took[cell]

    def left_s(self) -> float:
        with self._lock:
            now = time.monotonic()
            expected_done = sum(self.expected[c] for c in self._took)
            scale = sum(self._took.values()) / expected_done if expected_done else 1.0
            left = {
                c: max(0.0, scale * e - (now - self._started[c])) if c in self._started else scale * e
                for c, e in self.expected.items()
                if c not in self._took
            }
            shared = [t for c, t in left.items() if c.fault not in ALONE_FAULTS]
            # Spread over the lanes, but never shorter than the longest cell still to finish: at the end a few
            # long cells run alone and the lanes they leave idle do not shorten them. ALONE_FAULTS' cells run
            # one at a time after the rest, so theirs add up.
            lanes = max(sum(shared) / self.lanes, max(shared, default=0.0))
            return lanes + sum(t for c, t in left.items() if c.fault in ALONE_FAULTS)

    def left(self) -> str:
        """ "~12 min left" (or "~40 s left"); "done" once nothing is left."""
        seconds = self.left_s()
        if seconds <= 0:
            return "done"
        return f"~{seconds / 60:.0f} min left" if seconds >= 90 else f"~{seconds:.0f} s left"


def likely_wait_s(cell: Cell, params: FaultParams, *, starts_stack: bool = True) -> float:
    """A rough guess of a trial's length: to start the long groups first and to estimate the time left.

    A trial that ``starts_stack`` starts and stops one (a RabbitMQ node on top of that); kill-worker waits
    for the runner's redelivery bound (or the fixed watch beyond ``patience_s``); task-error with retries follows the
    always-refused email through its backoffs; delay-past-timeout waits out its delay.
    """
    runner = load_runner(cell.runner)
    base = QUICK_TRIAL_S
    if starts_stack:
        base += STACK_START_STOP_S + (RABBITMQ_BOOT_S if cell.broker_name == "rabbitmq" else 0.0)
    if cell.fault == "kill-worker":
        bound = runner.faults.redelivery_bound_s(_described(cell.runner, cell.broker_name, cell.config))
        if bound == 0:
            return base
        waited = bound if bound is not None and bound <= params.patience_s else params.watch_s
        return base + waited
    if cell.fault == "api-deploy":
        return base + API_RESTART_S
    if cell.fault == "broker-full":
        bound = runner.faults.redelivery_bound_s(_described(cell.runner, cell.broker_name, cell.config))
        return base + params.full_s + (bound if bound is not None and bound <= params.patience_s else 0.0)
    if cell.fault == "partition":
        bound = silence_bound_s(
            cell.broker_name,
            runner.faults.redelivery_bound_s(_described(cell.runner, cell.broker_name, cell.config)),
        )
        due = bound if bound is not None and bound <= params.patience_s else 0.0
        return base + cut_length_s(cell.variant, bound, params) + due
    if cell.fault == "slow-link":
        # Two drains of slow_n at the slots' email rate, the impaired one slower.
        return base + 3 * params.slow_n * params.smtp_delay_ms / 1000 / params.slots
    if cell.fault == "task-error" and runner.queue_configs[cell.broker_name][cell.config].max_attempts > 1:
        return base + POISON_WAIT_S
    if cell.fault == "delay-past-timeout":
        timeout = runner.faults.visibility_timeout_s(_described(cell.runner, cell.broker_name, cell.config))
        delay = 2 * timeout if timeout is not None and 2 * timeout <= params.max_delay_s else params.delay_s
        return base + delay + min(timeout or 0.0, params.patience_s)
    return base


@cache
def _described(runner: str, broker: str, config: QueueConfigName) -> dict[str, Any]:
    """The runner's describe() of a configuration, built once per process (building it builds a backend)."""
    return describe_runner(configure(Settings(backend=runner, broker=broker, queue_config=config)))


def summary(record: dict[str, Any]) -> str:
    """One line per finished cell for the progress log."""
    recovery = "never" if record["recovery_s"] is None else f"{record['recovery_s']:g} s"
    return (
        f"{record['lost']}/{record['expected']} lost, {record['held']} held, {record['failed']} failed, "
        f"{record['reexecuted']} re-executed, {record['duplicate_effects']} duplicated, "
        f"{record['skipped_redeliveries']} skipped, recovery {recovery}"
    )


def parameters(params: FaultParams) -> dict[str, Any]:
    """The fault parameters, as recorded under ``parameters.faults`` in results.json."""
    return asdict(params)


def compare_pass(
    runners: tuple[str, ...],
    workroot: Path,
    progress: ProgressSink | None = None,
    brokers: tuple[str, ...] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """The short pass ``fbt-bench compare`` runs: kill-worker in both configurations and a deploy (SIGTERM)
    in the safe one, for every runner on each of its brokers among ``brokers`` (None: all).

    Returns the fault records and a warning per cell that could not be measured.
    """
    cells = matrix(runners, CONFIGS, ("kill-worker",), brokers=brokers)
    cells += matrix(runners, ("safe",), ("deploy",), brokers=brokers)
    records = run_faults(cells, SHORT, workroot / "faults", progress)
    return records, not_measured(records)


def not_measured(records: list[dict[str, Any]]) -> list[str]:
    return [
        f"fault {system_key(r['runner'], r.get('broker'))}/{r['config']}/{r['fault']}: {r['notes']}"
        for r in records
        if r.get("error")
    ]
