"""Running cells: one on a fresh stack, a whole pass several at a time, and the records they produce.

How long to watch after a fault comes from the configuration in force (the runner's ``describe()``) and
the runner's own redelivery bound: the bound when it is within ``patience_s``, else a fixed ``watch_s``,
and the notes say which. Where the jobs still missing at the end wait is read through the runner's
``FaultModel.holdings`` and recorded in ``unfinished``.
"""

import asyncio
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
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
from fbt_bench.faults.observe import MARGIN_S, FaultContext
from fbt_bench.measuring.environment import describe_runner
from fbt_bench.progress import NullProgress, ProgressSink
from fbt_devstack.processes import log_tail
from fbt_devstack.redis_server import AppendFsync
from fbt_devstack.sink import Sink, smtp_sink
from fbt_devstack.stack import Stack
from fbt_tasks.runner import load_runner, system_key
from fbt_tasks.settings import Settings

# A cell with nothing to wait for: the stack's start and stop, the burst and a short watch.
QUICK_CELL_S = 15.0


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
    return found | ({"appendfsync": cell.variant} if cell.fault == "broker-crash" else {})


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

    The longest-expected cells start first so the lanes finish together. Ctrl-C stops every cell (each
    tears its stack down) and re-raises; a cell that fails becomes a record marked NOT MEASURED. Without a
    ``workroot`` the stacks work in a temporary directory, removed afterwards.
    """
    if workroot is None:
        with tempfile.TemporaryDirectory(prefix="fbt-faults-") as tmp:
            return run_faults(cells, params, Path(tmp), progress)
    progress = progress or NullProgress()
    cancel = threading.Event()
    order = sorted(cells, key=lambda cell: likely_wait_s(cell, params), reverse=True)
    results: dict[Cell, dict[str, Any]] = {}
    done: list[Cell] = []

    def one(cell: Cell) -> None:
        workdir = workroot / cell.tag.replace("/", "-").replace("#", "-").replace("(", "-").replace(")", "")
        try:
            results[cell] = run_cell(cell, params, workdir, cancel=cancel, progress=progress).record
        except Cancelled:
            return
        except Exception as exc:
            results[cell] = failed_cell(cell, exc, workdir, params)
        done.append(cell)
        left = len(cells) - len(done)
        progress.phase(f"faults [{len(done)}/{len(cells)}, {left} left] {cell.tag}: {summary(results[cell])}")

    pool = ThreadPoolExecutor(max_workers=max(1, params.parallel), thread_name_prefix="fault")
    try:
        futures = [pool.submit(one, cell) for cell in order]
        for future in futures:
            future.result()
    except KeyboardInterrupt:
        cancel.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [results[cell] for cell in cells if cell in results]


def likely_wait_s(cell: Cell, params: FaultParams) -> float:
    """A rough guess of a cell's length, only to start the long ones first.

    kill-worker waits for the runner's redelivery bound (or the fixed watch beyond ``patience_s``);
    task-error with retries follows the always-refused email through its backoffs.
    """
    runner = load_runner(cell.runner)
    if cell.fault == "kill-worker":
        described = describe_runner(
            Settings(backend=cell.runner, broker=cell.broker_name, queue_config=cell.config)
        )
        bound = runner.faults.redelivery_bound_s(described)
        if bound == 0:
            return QUICK_CELL_S
        waited = bound if bound is not None and bound <= params.patience_s else params.watch_s
        return waited + MARGIN_S
    if cell.fault == "task-error" and runner.queue_configs[cell.broker_name][cell.config].max_attempts > 1:
        return QUICK_CELL_S + POISON_WAIT_S
    if cell.fault == "delay-past-timeout":
        described = describe_runner(
            Settings(backend=cell.runner, broker=cell.broker_name, queue_config=cell.config)
        )
        timeout = runner.faults.visibility_timeout_s(described)
        delay = 2 * timeout if timeout is not None and 2 * timeout <= params.max_delay_s else params.delay_s
        return QUICK_CELL_S + delay + min(timeout or 0.0, params.patience_s)
    return QUICK_CELL_S


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
