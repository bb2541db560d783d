"""Running cells: one on a fresh stack, a whole pass several at a time, and the records they produce.

How long to watch after a fault comes from the configuration in force (the runner's ``describe()``) and
the runner's own redelivery bound: the bound when it is within ``patience_s``, else a fixed ``watch_s``,
and the notes say which. Where the jobs still missing at the end wait is read through the runner's
``FaultModel.holdings`` and recorded in ``unfinished``.
"""

import asyncio
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import Any, cast

from fbt_bench.faults.inject import FAULT_RUNS, POISON_PREFIX, POISON_WAIT_S
from fbt_bench.faults.model import (
    CONFIGS,
    SHORT,
    Cancelled,
    Cell,
    FaultParams,
    FaultRun,
    has_one_config,
    matrix,
    trial_params,
)
from fbt_bench.faults.observe import FaultContext
from fbt_bench.measuring.environment import describe_runner
from fbt_bench.progress import NullProgress, ProgressSink
from fbt_devstack.processes import log_tail
from fbt_devstack.redis_server import AppendFsync
from fbt_devstack.sink import Sink, smtp_sink
from fbt_devstack.stack import Stack
from fbt_tasks.runner import QueueConfigName, load_runner, system_key
from fbt_tasks.settings import Settings

# A cell with nothing to wait for: the stack's start and stop (most of a short cell), the burst, the grace
# period and a short watch; a private RabbitMQ node's boot and stop come on top. Only estimates, to order the
# cells and to print the time left, which ``Eta`` rescales by what the finished cells really took.
QUICK_CELL_S = 25.0
RABBITMQ_BOOT_S = 20.0


def mechanism(cell: Cell, described: dict[str, Any], result: dict[str, Any]) -> str:
    """One sentence: why this runner, configured as it was, behaved as measured (the runner's own words)."""
    told = load_runner(cell.runner).faults.mechanism(cell.fault, described, result)
    if twice := result["duplicate_effects"]:
        why = (
            "their send-once record could not be written while Redis was down"
            # The send-once record lives in Redis whatever the broker: only a Redis outage keeps it unwritten.
            if cell.fault in ("broker-restart", "broker-crash") and cell.broker_name == "redis"
            else "the fault fell between the SMTP server's acceptance and the send-once record, the window "
            "fbt_tasks.once documents"
        )
        told += f"; {twice} emails went out twice: {why}"
    return told


def cell_settings(cell: Cell, params: FaultParams, sink: Sink, workdir: Path) -> Settings:
    options: dict[str, Any] = {}
    if params.smtp_timeout_s is not None:
        options["smtp_timeout_s"] = params.smtp_timeout_s
    return Settings(
        backend=cell.runner,
        broker=cell.broker_name,
        queue_config=cell.config,
        worker_processes=params.worker_processes,
        worker_threads=params.worker_threads,
        api_threadpool=params.slots if params.api_threadpool is None else params.api_threadpool,
        access_log=False,
        port=0,  # a free port: never a well-known one on a shared machine
        smtp_host=sink.host,
        smtp_port=sink.port,
        log_file=workdir / "log.txt",
        ledger_file=workdir / "ledger.jsonl",
        media_dir=workdir / "media",
        **options,
    )


def run_cell(
    cell: Cell,
    params: FaultParams,
    workdir: Path,
    *,
    cancel: threading.Event | None = None,
    progress: ProgressSink | None = None,
) -> FaultRun:
    """Inject one fault on a fresh stack and return its record; everything started is stopped on return."""
    workdir.mkdir(parents=True, exist_ok=True)
    erring = cell.fault == "task-error"
    progress = progress or NullProgress()
    seed = cell.seed(params.seed)
    params, mid_send = trial_params(params, seed)
    progress.phase(f"faults {cell.tag}: starting the stack")
    with smtp_sink(
        workdir,
        delay_ms=params.smtp_delay_ms,
        fail_first=params.fail_first if erring else 0,
        always_fail_to=POISON_PREFIX if erring else "",
    ) as sink:
        settings = cell_settings(cell, params, sink, workdir)
        fsync: AppendFsync = "everysec"
        if cell.fault == "broker-crash" and cell.variant in ("always", "everysec", "no"):
            fsync = cast(AppendFsync, cell.variant)
        with Stack(
            settings, workdir=workdir, start_smtp=False, redis_appendonly=True, redis_appendfsync=fsync
        ) as stack:
            described = describe_runner(stack.settings)
            ctx = FaultContext(cell, params, stack, sink, described, cancel or threading.Event(), progress)
            ctx.mid_send = mid_send
            result = asyncio.run(FAULT_RUNS[cell.fault](ctx))
            notes = ctx.notes
            if cell.fault == "task-error":
                retried = list(
                    load_runner(cell.runner).queue_configs[cell.broker_name][cell.config].retries_on
                )
                result["retried_errors"] = retried
                notes.append(f"retried on: {', '.join(retried) or 'nothing (no retry)'}")
            if has_one_config(cell.runner, cell.broker_name):
                # Nothing to configure: the one configuration's summary says what that means.
                summary = load_runner(cell.runner).queue_configs[cell.broker_name][cell.config].summary
                notes = [summary, *notes]
            record = {
                **identity(cell, seed),
                "fault_after": params.fault_after,
                **result,
                "mechanism": mechanism(cell, described, result),
                "notes": "; ".join(notes),
                # The configuration in force (the runner's describe()), which the mechanism is derived from.
                "configuration": described,
            }
            return FaultRun(record=record, accepted=list(ctx.accepted), mailbox=sink.mailbox)


def identity(cell: Cell, seed: int) -> dict[str, Any]:
    """What names a record: the cell, its variant, its trial and the seed its fault moment was drawn from."""
    found = {
        "runner": cell.runner,
        "broker": cell.broker_name,
        "config": cell.config,
        "fault": cell.fault,
        "trial": cell.trial,
        "seed": seed,
    }
    # A broker-crash cell on Redis is one of its fsync policies; on RabbitMQ it has no variant.
    return found | ({"appendfsync": cell.variant} if cell.fault == "broker-crash" and cell.variant else {})


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


def run_faults(
    cells: list[Cell],
    params: FaultParams,
    workroot: Path | None = None,
    progress: ProgressSink | None = None,
) -> list[dict[str, Any]]:
    """Run ``cells`` ``params.parallel`` at a time (most of a cell is waiting on a library's timeout).

    The longest-expected cells start first so the lanes finish together. Each finished cell prints a line with
    the cells done, the total and an estimate of the time left (``Eta``); its record keeps its wall time in
    ``cell_s``. Ctrl-C stops every cell (each tears its stack down) and re-raises; a cell that fails becomes a
    record marked NOT MEASURED. Without a ``workroot`` the stacks work in a temporary directory, removed
    afterwards.
    """
    if workroot is None:
        with tempfile.TemporaryDirectory(prefix="fbt-faults-") as tmp:
            return run_faults(cells, params, Path(tmp), progress)
    progress = progress or NullProgress()
    cancel = threading.Event()
    eta = Eta({cell: likely_wait_s(cell, params) for cell in cells}, max(1, params.parallel))
    order = sorted(cells, key=eta.expected.__getitem__, reverse=True)
    results: dict[Cell, dict[str, Any]] = {}
    bar = progress.bar("fault cells", len(cells))

    def one(cell: Cell) -> None:
        workdir = workroot / cell.tag.replace("/", "-").replace("#", "-").replace("(", "-").replace(")", "")
        eta.start(cell)
        try:
            record = run_cell(cell, params, workdir, cancel=cancel, progress=progress).record
        except Cancelled:
            return
        except Exception as exc:
            record = failed_cell(cell, exc, workdir, params)
        record["cell_s"] = round(eta.finish(cell), 1)
        results[cell] = record
        progress.update(bar, len(results))
        progress.phase(f"faults [{len(results)}/{len(cells)}, {eta.left()}] {cell.tag}: {summary(record)}")

    pool = ThreadPoolExecutor(max_workers=max(1, params.parallel), thread_name_prefix="fault")
    try:
        futures = [pool.submit(one, cell) for cell in order]
        for future in futures:
            future.result()
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
            waiting = sum(e for c, e in self.expected.items() if c not in self._started)
            running = sum(
                max(0.0, scale * self.expected[c] - (now - t))
                for c, t in self._started.items()
                if c not in self._took
            )
            return (scale * waiting + running) / self.lanes

    def left(self) -> str:
        """ "~12 min left" (or "~40 s left"); "done" once nothing is left."""
        seconds = self.left_s()
        if seconds <= 0:
            return "done"
        return f"~{seconds / 60:.0f} min left" if seconds >= 90 else f"~{seconds:.0f} s left"


def likely_wait_s(cell: Cell, params: FaultParams) -> float:
    """A rough guess of a cell's length: to start the long ones first and to estimate the time left.

    Every cell starts and stops a stack (a RabbitMQ node on top of that); kill-worker waits for the runner's
    redelivery bound (or the fixed watch beyond ``patience_s``); task-error with retries follows the
    always-refused email through its backoffs; delay-past-timeout waits out its delay.
    """
    runner = load_runner(cell.runner)
    base = QUICK_CELL_S + (RABBITMQ_BOOT_S if cell.broker_name == "rabbitmq" else 0.0)
    if cell.fault == "kill-worker":
        bound = runner.faults.redelivery_bound_s(_described(cell.runner, cell.broker_name, cell.config))
        if bound == 0:
            return base
        waited = bound if bound is not None and bound <= params.patience_s else params.watch_s
        return base + waited
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
    return describe_runner(Settings(backend=runner, broker=broker, queue_config=config))


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
    """The short pass ``fbt-bench compare`` runs: kill-worker in both configurations for every runner on
    each of its brokers among ``brokers`` (None: all).

    Returns the fault records and a warning per cell that could not be measured.
    """
    cells = matrix(runners, CONFIGS, ("kill-worker",), brokers=brokers)
    records = run_faults(cells, SHORT, workroot / "faults", progress)
    return records, not_measured(records)


def not_measured(records: list[dict[str, Any]]) -> list[str]:
    return [
        f"fault {system_key(r['runner'], r.get('broker'))}/{r['config']}/{r['fault']}: {r['notes']}"
        for r in records
        if r.get("error")
    ]
