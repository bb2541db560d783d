"""A cell's trials on one stack: started once, each trial with its own burst, seed and record.

Starting and stopping a stack (Redis or a RabbitMQ node, the sink, the API, the workers) costs more CPU than
most trials, so the trials of a cell (same runner, broker, queue config, fault and variant) share one. Each
trial still counts only its own jobs: every count is by job id (ledger, mailbox, send-once leases, the
broker's holdings), and the context keeps where the mailbox and the leases stood when the trial began.

A stack serves the next trial only if the last one left nothing behind that could reach into it
(``leftovers``): every process running (the faults restart what they stop), none of its jobs still in the
broker, and on a RabbitMQ node, whose holdings are counted per queue rather than per job, no message in any
queue. Otherwise the next trial gets a fresh stack in a directory of its own (a fresh Redis must not load
the last one's AOF), and its record says so (``stack``).
"""

import asyncio
import contextlib
import secrets
import threading
from collections.abc import Callable, Generator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from fbt_bench.faults.inject import FAULT_RUNS, POISON_PREFIX
from fbt_bench.faults.model import (
    LINK_FAULTS,
    Cancelled,
    Cell,
    FaultParams,
    FaultRun,
    has_one_config,
    trial_params,
)
from fbt_bench.faults.observe import BROKER_READ_ERRORS, LEASE_PATTERN, FaultContext
from fbt_bench.faults.slowlink import impairment_words
from fbt_bench.measuring.environment import describe_runner
from fbt_bench.progress import NullProgress, ProgressSink
from fbt_devstack.delay_proxy import Impairment
from fbt_devstack.netns import Hosts
from fbt_devstack.redis_server import AppendFsync
from fbt_devstack.sink import Sink, smtp_sink
from fbt_devstack.smtp_sink import read_mailbox
from fbt_devstack.stack import Stack
from fbt_tasks.registry import configure, load_runner
from fbt_tasks.runner import FaultOutcome, Holdings, pending
from fbt_tasks.settings import Settings

# A malformed message has no job id, so whether it is still on a queue cannot be read per job: each
# poison-message trial gets a fresh stack.
FRESH_EACH_TRIAL: frozenset[str] = frozenset({"poison-message"})
HOST_ROLES = ("api", "broker", "workers")


def outcome_of(result: Mapping[str, Any]) -> FaultOutcome:
    """The typed view of a fault record that a runner's mechanism sentence reads (fbt_tasks.runner)."""
    runs = result.get("executions") or None
    poison = result.get("poison") or {}
    return FaultOutcome(
        lost=int(result.get("lost", 0)),
        held=int(result.get("held", 0)),
        failed=int(result.get("failed", 0)),
        unacked=int((result.get("unfinished") or {}).get("held", 0)),
        failed_attempts=int(result.get("failed_attempts", 0)),
        reexecuted=int(result.get("reexecuted", 0)),
        duplicates=len(result.get("duplicates") or ()),
        watched_s=result.get("watched_s"),
        graceful=result.get("graceful"),
        delay_s=result.get("delay_s"),
        appendfsync=result.get("appendfsync"),
        slowest_answer_ms=(result.get("outage") or {}).get("max_latency_ms"),
        refused_while_out=(result.get("outage") or {}).get("answers", {}).get("503"),
        hung_while_out=(result.get("outage") or {}).get("answers", {}).get("hang"),
        unreachable_while_out=(result.get("outage") or {}).get("answers", {}).get("other"),
        worker_exited=result.get("worker_exited_while_full"),
        cut_off=result.get("cut_off"),
        cut_s=result.get("cut_s"),
        clean_per_s=(result.get("throughput") or {}).get("clean_per_s"),
        slow_per_s=(result.get("throughput") or {}).get("slow_per_s"),
        impairment=impairment_words(result.get("impairment")),
        runs=(int(runs["min"]), int(runs["max"]), int(runs["skipped"])) if runs else None,
        poison_where=poison.get("where"),
        worker_kept_working=poison.get("worker_kept_working"),
    )


def mechanism(cell: Cell, described: dict[str, Any], result: dict[str, Any]) -> str:
    """One sentence: why this runner, configured as it was, behaved as measured (the runner's own words)."""
    told = load_runner(cell.runner).faults.mechanism(cell.fault, described, outcome_of(result))
    if twice := result["duplicate_effects"]:
        why = (
            "their send-once record could not be written while Redis was down or full"
            # The send-once record lives in Redis whatever the broker: only a Redis outage keeps it unwritten.
            if cell.fault in ("broker-restart", "broker-crash", "broker-full") and cell.broker_name == "redis"
            else "their send-once record could not be written while the workers were cut off from Redis"
            if cell.fault == "partition" and cell.variant == "workers"
            else "the fault fell between the SMTP server's acceptance and the send-once record, the window "
            "fbt_tasks.once documents"
        )
        told += f"; {twice} emails went out twice: {why}"
    return told


def cell_settings(cell: Cell, params: FaultParams, sink: Sink, workdir: Path) -> Settings:
    options: dict[str, Any] = {}
    if params.smtp_timeout_s is not None:
        options["smtp_timeout_s"] = params.smtp_timeout_s
    return configure(
        Settings(
            backend=cell.runner,
            broker=cell.broker_name,
            queue_config=cell.config,
            worker_processes=params.worker_processes,
            worker_threads=params.worker_threads,
            api_threadpool=params.slots if params.api_threadpool is None else params.api_threadpool,
            access_log=False,
            # A key of its own: an API on another host (the partition cells') refuses the development key.
            api_key=secrets.token_urlsafe(16),
            port=0,  # a free port: never a well-known one on a shared machine
            smtp_host=sink.host,
            smtp_port=sink.port,
            log_file=workdir / "log.txt",
            ledger_file=workdir / "ledger.jsonl",
            media_dir=workdir / "media",
            **options,
        )
    )


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
    if cell.fault == "broker-crash" and cell.variant:
        return found | {"appendfsync": cell.variant}
    return found | ({"variant": cell.variant} if cell.variant else {})


class StackSession:
    """One started stack (and its sink) serving trials of one cell until a trial leaves it unfit."""

    def __init__(self, cell: Cell, params: FaultParams, workdir: Path) -> None:
        self.workdir = workdir
        self.trials = 0
        self._exit = contextlib.ExitStack()
        workdir.mkdir(parents=True, exist_ok=True)
        erring = cell.fault == "task-error"
        try:
            # The broker, the API and the workers each on a host of their own; the sink stays outside, on
            # the bridge's address, as a mail provider would.
            # slow-link's loss and jitter live in the delay relay in front of Redis (no netem on these kernels).
            slow = cell.fault == "slow-link"
            hosts = (
                self._exit.enter_context(Hosts(HOST_ROLES, method="proxy" if slow else None))
                if cell.fault in LINK_FAULTS
                else None
            )
            self.sink = self._exit.enter_context(
                smtp_sink(
                    workdir,
                    delay_ms=params.smtp_delay_ms,
                    fail_first=params.fail_first if erring else 0,
                    always_fail_to=POISON_PREFIX if erring else "",
                    host=hosts.gateway if hosts is not None else "127.0.0.1",
                )
            )
            fsync: AppendFsync = "everysec"
            if cell.fault == "broker-crash" and cell.variant in ("always", "everysec", "no"):
                fsync = cast(AppendFsync, cell.variant)
            settings = cell_settings(cell, params, self.sink, workdir)
            self.stack = self._exit.enter_context(
                Stack(
                    settings,
                    workdir=workdir,
                    start_smtp=False,
                    redis_appendonly=True,
                    redis_appendfsync=fsync,
                    hosts=hosts,
                    link_impairment=Impairment(
                        params.slow_loss_pct, params.slow_jitter_ms, params.slow_stall_ms
                    )
                    if slow
                    else None,
                )
            )
            self.described = describe_runner(self.stack.settings)
        except BaseException:
            self._exit.close()
            raise

    def close(self) -> None:
        self._exit.close()

    def trial(
        self, cell: Cell, params: FaultParams, cancel: threading.Event, progress: ProgressSink
    ) -> tuple[FaultRun, FaultContext]:
        """Run one trial of ``cell`` on this stack; returns its record and its context (for ``leftovers``)."""
        seed = cell.seed(params.seed)
        params, mid_send = trial_params(params, seed)
        ctx = FaultContext(cell, params, self.stack, self.sink, self.described, cancel, progress)
        ctx.mid_send = mid_send
        ctx.mail_from = len(read_mailbox(self.sink.mailbox))
        ctx.stale_leases = frozenset(self._leases(ctx))
        reused = self.trials > 0
        self.trials += 1
        result = asyncio.run(FAULT_RUNS[cell.fault](ctx))
        notes = ctx.notes
        if cell.fault == "task-error":
            retried = list(load_runner(cell.runner).queue_configs[cell.broker_name][cell.config].retries_on)
            result["retried_errors"] = retried
            notes.append(f"retried on: {', '.join(retried) or 'nothing (no retry)'}")
        if has_one_config(cell.runner, cell.broker_name):
            # Nothing to configure: the one configuration's summary says what that means.
            summary = load_runner(cell.runner).queue_configs[cell.broker_name][cell.config].summary
            notes = [summary, *notes]
        if reused:
            notes.append(f"on the stack of the previous trial (trial {self.trials} on it)")
        record = {
            **identity(cell, seed),
            "fault_after": params.fault_after,
            **result,
            "mechanism": mechanism(cell, self.described, result),
            "notes": "; ".join(notes),
            # How the trial ran: on a stack started for it, or on one an earlier trial left clean.
            "stack": "reused" if reused else "fresh",
            # The configuration in force (the runner's describe()), which the mechanism is derived from.
            "configuration": self.described,
        }
        return FaultRun(record=record, accepted=list(ctx.accepted), mailbox=self.sink.mailbox), ctx

    @staticmethod
    def _leases(ctx: FaultContext) -> set[str]:
        client = ctx.redis_client()
        try:
            return {key.decode().rsplit(":", 1)[-1] for key in client.scan_iter(match=LEASE_PATTERN)}
        except BROKER_READ_ERRORS:
            return set()
        finally:
            client.close()


def leftovers(ctx: FaultContext, record: dict[str, Any]) -> str | None:
    """Why the stack cannot serve another trial, or None when the last trial left it clean."""
    if ctx.cell.fault in FRESH_EACH_TRIAL:
        return f"{ctx.cell.fault} leaves a message without a job id"
    if record.get("held"):
        return f"{record['held']} jobs still held"
    if dead := ctx.stack.failed():
        return f"{', '.join(dead)} not running"
    try:
        found = ctx.holdings(set(ctx.accepted) | set(ctx.sent))
        if found and pending(cast(Holdings, found)):
            return "jobs of the last trial still in the broker"
        if ctx.stack.rabbitmq is not None:
            counts = ctx.stack.rabbitmq.queue_counts()
            if any(ready or unacked for ready, unacked in counts.values()):
                return "messages left on the RabbitMQ node"
    except BROKER_READ_ERRORS as exc:
        return f"the broker could not be read ({type(exc).__name__})"
    return None


Outcome = FaultRun | Exception


def run_trials(
    cells: Sequence[Cell],
    params: FaultParams,
    workdir: Path,
    *,
    cancel: threading.Event | None = None,
    progress: ProgressSink | None = None,
    started: Callable[[Cell], None] | None = None,
) -> Generator[tuple[Cell, Outcome, Path], None, None]:
    """Run the trials ``cells`` (one cell's, in order) on as few stacks as stay clean; yield each trial's
    run, or the exception that kept it from being measured, and the directory of the stack it ran on.

    The first stack works in ``workdir``, a later one in ``workdir/stack<k>``. A trial that raises closes
    its stack (it may be half broken); the next trial starts a fresh one. ``Cancelled`` propagates.
    """
    cancel = cancel or threading.Event()
    progress = progress or NullProgress()
    session: StackSession | None = None
    opened = 0
    try:
        for cell in cells:
            if started is not None:
                started(cell)
            stack_dir = workdir if opened == 0 else workdir / f"stack{opened + 1}"
            try:
                if session is None:
                    progress.phase(f"faults {cell.tag}: starting the stack")
                    opened += 1
                    session = StackSession(cell, params, stack_dir)
                stack_dir = session.workdir
                run, ctx = session.trial(cell, params, cancel, progress)
                if cell is cells[-1]:
                    pass  # the stack stops below: nothing to check it for
                elif (why := leftovers(ctx, run.record)) is not None:
                    run.record["notes"] += f"; the next trial gets a fresh stack: {why}"
                    session.close()
                    session = None
            except Cancelled:
                raise
            except Exception as exc:
                if session is not None:
                    session.close()
                    session = None
                yield cell, exc, stack_dir
                continue
            yield cell, run, stack_dir
    finally:
        if session is not None:
            session.close()


def run_cell(
    cell: Cell,
    params: FaultParams,
    workdir: Path,
    *,
    cancel: threading.Event | None = None,
    progress: ProgressSink | None = None,
) -> FaultRun:
    """Inject one fault on a fresh stack and return its record; everything started is stopped on return."""
    with contextlib.closing(run_trials([cell], params, workdir, cancel=cancel, progress=progress)) as trials:
        for _, outcome, _ in trials:
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
    raise AssertionError("unreachable")
