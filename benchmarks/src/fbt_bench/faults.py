"""When things break: fault injection per runner and queue configuration, counted from real effects.

Each cell (runner x QUEUE_CONFIG x fault) gets a fresh stack: embedded Redis with AOF on, the API, the
runner's workers and our own SMTP sink (so task-error can make it refuse deliveries). The faults:

- kill-worker     SIGKILL the worker's whole process tree (in-process: the API) mid-burst, start it again.
- deploy          SIGTERM mid-burst, as a rolling deploy does; SIGKILL only after compose's grace period.
- broker-restart  stop Redis mid-burst, keep it down a few seconds, start it again; probe the API meanwhile.
- task-error      every email is refused twice by the sink (a real 451), then accepted.

The burst is emails, because an email's effect can be counted where it lands: the sink's mailbox, by
Message-ID (the job id). lost = accepted jobs whose email never arrived; duplicate_effects = emails that
arrived more than once; reexecuted = jobs that ran more than once, from the ledger plus the send-once leases
a killed attempt leaves behind in Redis. The fault is injected just after a delivery, half an SMTP delay
later, so it lands mid-send: the case the send-once guard (``fbt_tasks.once``) exists for.

How long to watch after a fault comes from the configuration in force (each runner's ``describe()``): the
library's own redelivery bound when it is within ``patience_s``, else a fixed ``watch_s``, and the notes
say which. Watching ends early once the broker holds none of the jobs for a worker any more (queued,
delivered-unacked, scheduled: none can run again) and every email arrived or nothing happened for a while.
Where the jobs still missing at the end are, read from each library's Redis keys, is in ``unfinished``.
"""

import asyncio
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import httpx
import redis

from fbt_bench import loadgen
from fbt_bench.api_client import ApiClient
from fbt_bench.profiles import RUNNERS
from fbt_bench.progress import NullProgress, ProgressSink
from fbt_bench.topology import describe_runner
from fbt_devstack.ports import free_port, wait_for_port
from fbt_devstack.processes import ProcessGroup, log_tail
from fbt_devstack.smtp_sink import read_mailbox
from fbt_devstack.stack import Stack
from fbt_tasks.ledger import CompletionEvent, read_events
from fbt_tasks.settings import Settings

FaultName = Literal["kill-worker", "deploy", "broker-restart", "task-error"]
FAULTS: tuple[FaultName, ...] = ("kill-worker", "deploy", "broker-restart", "task-error")
CONFIGS = ("defaults", "safe")

# fbt_tasks.once keeps a lease per email in flight under this prefix (key "email:<message id>").
LEASE_PATTERN = "fbt:once:lease:email:*"
POLL_S = 0.2
# Nothing new for this long, and the broker holds none of the missing jobs: nothing more will happen.
QUIET_S = 3.0
# An API call that takes longer than this during a broker outage counts as a hang (the API promises 503
# within ~2 s); the client gives up at HANG_S so a hang cannot stall the run.
HANG_S = 10.0
PROBE_ATTEMPTS = 20
SINK_ATTEMPTS = 3
# task-error's always-refused recipient, and how long to follow it once the other emails went through.
POISON_PREFIX = "poison"
POISON_WAIT_S = 30.0
# On top of the configuration's own bound: stack restart, the backlog and a loaded machine.
MARGIN_S = 15.0


@dataclass(frozen=True, slots=True)
class FaultParams:
    n: int = 60  # emails per burst
    fault_after: int = 15  # deliveries before the fault is injected
    smtp_delay_ms: int = 100
    worker_processes: int = 1
    worker_threads: int = 2
    burst_concurrency: int = 4
    # The longest recovery bound we wait for; a configuration whose bound is longer is watched watch_s.
    patience_s: float = 150.0
    watch_s: float = 90.0
    # docker compose's stop_grace_period for the workers (compose.yaml): SIGKILL follows after this.
    deploy_grace_s: float = 30.0
    outage_s: float = 3.0
    outage_probe_hz: float = 10.0
    error_n: int = 5
    fail_first: int = 2
    # None keeps the setting's default; the exactly-once test shortens it (the send-once lease follows it).
    smtp_timeout_s: float | None = None
    parallel: int = 3
    # None: the slots, the benchmark's equal budget (for BackgroundTasks, the threadpool is the task slots).
    api_threadpool: int | None = None

    @property
    def slots(self) -> int:
        return self.worker_processes * self.worker_threads

    def with_overrides(self, *, n: int | None = None, parallel: int | None = None) -> "FaultParams":
        """A copy with a different burst size or parallelism (``None``: keep); the fault lands mid-burst."""
        n = n or self.n
        return replace(
            self, n=n, fault_after=min(self.fault_after, n // 2), parallel=parallel or self.parallel
        )


FULL = FaultParams()
# What `fbt-bench compare` adds: kill-worker only, a smaller burst, a shorter watch of the configurations
# that recover only after minutes or never.
SHORT = replace(FULL, n=30, fault_after=8, watch_s=30.0, parallel=4)


@dataclass(frozen=True, slots=True)
class Cell:
    runner: str
    config: str
    fault: FaultName

    @property
    def tag(self) -> str:
        return f"{self.runner}/{self.config}/{self.fault}"


def matrix(
    runners: tuple[str, ...] = RUNNERS,
    configs: tuple[str, ...] = CONFIGS,
    faults: tuple[FaultName, ...] = FAULTS,
) -> list[Cell]:
    """Every cell; in-process BackgroundTasks have no queue to configure, so they run once (as shipped)."""
    cells = []
    for runner in runners:
        for config in ("safe",) if runner == "inprocess" else configs:
            cells.extend(Cell(runner, config, fault) for fault in faults)
    return cells


@dataclass
class FaultRun:
    """One cell's record for results.json, and what a test needs to check it independently."""

    record: dict[str, Any]
    accepted: list[str]
    mailbox: Path


# -- the SMTP sink ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sink:
    port: int
    mailbox: Path


@contextmanager
def smtp_sink(workdir: Path, delay_ms: int, fail_first: int = 0, always_fail_to: str = "") -> Iterator[Sink]:
    """The project's SMTP sink on a free port, stopped on exit (a Stack's own sink cannot refuse mail)."""
    mailbox = workdir / "mailbox.jsonl"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with ProcessGroup() as group:
        for attempt in range(1, SINK_ATTEMPTS + 1):
            port = free_port()
            argv = [sys.executable, "-m", "fbt_devstack.smtp_sink", f"--port={port}", f"--mailbox={mailbox}"]
            argv += [
                f"--delay-ms={delay_ms}",
                f"--fail-first={fail_first}",
                f"--always-fail-to={always_fail_to}",
            ]
            group.spawn("smtp", argv, env=env, log_path=workdir / "logs" / "smtp.log")
            try:
                wait_for_port("127.0.0.1", port, timeout_s=20)
                break
            except TimeoutError:
                group.stop("smtp", timeout_s=2)  # most likely someone took the port first: try another
                if attempt == SINK_ATTEMPTS:
                    raise
        yield Sink(port, mailbox)


# -- what happened: mailbox, ledger, Redis ----------------------------------------------------------------


def deliveries(mailbox: Path) -> Counter[str]:
    """Copies received per job id (the Message-ID is ``<job id@fbt.localhost>``)."""
    return Counter(mail.message_id.strip("<>").split("@", 1)[0] for mail in read_mailbox(mailbox))


def ledger_by_id(path: Path, ids: set[str]) -> dict[str, list[CompletionEvent]]:
    found: dict[str, list[CompletionEvent]] = {}
    for event in read_events(path):
        if event.id in ids:
            found.setdefault(event.id, []).append(event)
    return found


def leased_ids(client: redis.Redis) -> tuple[set[str], float]:
    """Emails whose send-once lease is held (an attempt was in flight), and the longest lease left in s."""
    ids, longest_ms = set(), 0
    for key in client.scan_iter(match=LEASE_PATTERN, count=1000):
        ids.add(key.decode().rsplit(":", 1)[-1])
        longest_ms = max(longest_ms, int(client.pttl(key)))
    return ids, longest_ms / 1000


def broker_holdings(runner: str, client: redis.Redis, ids: set[str]) -> dict[str, int]:
    """Where the broker keeps those of ``ids`` it still has, read from each library's Redis layout.

    queued: waiting for a worker; held: delivered to a worker and not acked (comes back after the library's
    timeout); scheduled: waiting out a retry backoff; failed: in the library's failure store (dead-letter
    queue, failed registry, FAILURE result).
    """
    if runner == "celery":
        return _celery_holdings(client, ids)
    if runner == "rq":
        return _rq_holdings(client, ids)
    if runner == "dramatiq":
        return _dramatiq_holdings(client, ids)
    return {}  # BackgroundTasks: nothing outside the API process's memory


def _count(members: list[bytes], ids: set[str], parse: Callable[[bytes], str] = bytes.decode) -> int:
    return sum(1 for member in members if parse(member) in ids)


def _celery_task_id(raw: bytes) -> str:
    message = json.loads(raw)
    # kombu's unacked hash stores [message, exchange, routing key]; the queue list stores the message.
    message = message[0] if isinstance(message, list) else message
    return str(message.get("headers", {}).get("id", ""))


def _celery_holdings(client: redis.Redis, ids: set[str]) -> dict[str, int]:
    # kombu's Redis transport: queue "celery" is a list, delivered-unacked messages a hash "unacked".
    states = client.mget([f"celery-task-meta-{job_id}" for job_id in ids]) if ids else []
    return {
        "queued": _count(client.lrange("celery", 0, -1), ids, _celery_task_id),
        "held": _count(client.hvals("unacked"), ids, _celery_task_id),
        "scheduled": 0,  # a retry with a countdown is held by a worker (unacked) until it is due
        "failed": sum(1 for raw in states if raw and json.loads(raw).get("status") == "FAILURE"),
    }


def _rq_holdings(client: redis.Redis, ids: set[str]) -> dict[str, int]:
    # rq/registry.py key templates for the queue "fbt"; started entries are "<job id>:<execution id>". A
    # dequeued job sits in the intermediate list until its worker registers it as started (rq/queue.py).
    started = _count(client.zrange("rq:wip:fbt", 0, -1), ids, lambda m: m.decode().split(":", 1)[0])
    return {
        "queued": _count(client.lrange("rq:queue:fbt", 0, -1), ids),
        "held": started + _count(client.lrange("rq:queue:fbt:intermediate", 0, -1), ids),
        "scheduled": _count(client.zrange("rq:scheduled:fbt", 0, -1), ids),
        "failed": _count(client.zrange("rq:failed:fbt", 0, -1), ids),
    }


def _dramatiq_holdings(client: redis.Redis, ids: set[str]) -> dict[str, int]:
    # dramatiq/brokers/redis/dispatch.lua: queue lists and each worker's "__acks__.<worker id>.<queue>" set
    # hold the broker's own redis_message_id; the message (with our id as message_id) sits in "<queue>.msgs".
    # Retries wait in the ".DQ" queue, dead letters in the ".XQ" zset.
    ours: dict[bytes, str] = {}
    for queue in ("default", "default.DQ", "default.XQ"):
        for redis_id, body in client.hgetall(f"dramatiq:{queue}.msgs").items():
            ours[redis_id] = str(json.loads(body).get("message_id", ""))

    def job_id(member: bytes) -> str:
        return ours.get(member, "")

    held = 0
    for key in client.scan_iter(match="dramatiq:__acks__.*", count=1000):
        held += _count(list(client.smembers(key)), ids, job_id)
    return {
        "queued": _count(client.lrange("dramatiq:default", 0, -1), ids, job_id),
        "held": held,
        "scheduled": _count(client.lrange("dramatiq:default.DQ", 0, -1), ids, job_id),
        "failed": _count(client.zrange("dramatiq:default.XQ", 0, -1), ids, job_id),
    }


def pending(holdings: dict[str, int]) -> int:
    """Jobs the broker will still hand to a worker (failed ones it will not)."""
    return sum(count for where, count in holdings.items() if where != "failed")


# -- how long to watch, from the configuration in force ---------------------------------------------------


def redelivery_bound_s(runner: str, described: dict[str, Any]) -> float | None:
    """Seconds after a SIGKILL by which the configuration puts the killed worker's jobs back; None: never."""
    if runner == "inprocess":
        return 0.0
    if runner == "celery":
        # kombu sweeps the unacked hash every unacked_sweep_s and restores entries older than the timeout.
        return float(described.get("visibility_timeout_s", 3600)) + float(
            described.get("unacked_sweep_s", 100)
        )
    if runner == "rq":
        if described.get("retry", "none") == "none":
            return None  # without Retry, RQ's cleanup moves an abandoned job to the FailedJobRegistry
        # rq.worker: a started job's heartbeat deadline is min(job timeout, monitoring interval) + 60 s; a job
        # dequeued but not yet started is failed (so retried) from the intermediate queue by the first
        # maintenance pass over a minute after one first saw it. Passes run every maintenance_interval_s,
        # between dequeues, which block idle_dequeue_block_s.
        maintenance = float(described["maintenance_interval_s"])
        monitoring = float(described["job_monitoring_interval_s"])
        started = min(float(described.get("job_timeout_s", 180)), monitoring) + 60
        return max(started, 60 + maintenance) + maintenance + float(described["idle_dequeue_block_s"])
    if runner == "dramatiq":
        reliability = described.get("reliability", {})
        chance = float(reliability.get("maintenance_chance_per_million", 1000)) / 1e6
        # Maintenance runs on a random share of broker calls; an idle worker makes about one a second, so
        # three expected waits cover it ~95 % of the time.
        return float(reliability.get("heartbeat_timeout_ms", 60_000)) / 1000 + 3 / chance
    return None


def watch_window(
    bound_s: float | None, lease_s: float, extra_s: float, params: FaultParams
) -> tuple[float, str]:
    """How long to watch after the fault, and why (a few words for the record's notes).

    ``lease_s``: a redelivered email first waits out the send-once lease of its killed attempt.
    """
    if bound_s == 0:
        return extra_s + MARGIN_S, "nothing to redeliver"
    if bound_s is not None and bound_s <= params.patience_s:
        return max(bound_s, lease_s) + extra_s + MARGIN_S, f"redelivery due by ~{bound_s:.0f} s"
    if bound_s is None:
        return params.watch_s + extra_s, "this configuration never redelivers"
    return params.watch_s + extra_s, f"this configuration redelivers only after ~{bound_s:.0f} s"


# -- mechanism sentences, from the configuration in force and what was measured ---------------------------


def mechanism(cell: Cell, described: dict[str, Any], result: dict[str, Any]) -> str:
    """One sentence: why this runner, configured as it was, behaved as measured."""
    told = MECHANISMS[cell.runner](cell.fault, described, result)
    if twice := result["duplicate_effects"]:
        why = (
            "their send-once record could not be written while Redis was down"
            if cell.fault == "broker-restart"
            else "the fault fell between the SMTP server's acceptance and the send-once record, the window "
            "fbt_tasks.once documents"
        )
        told += f"; {twice} emails went out twice: {why}"
    return told


def _outage(r: dict[str, Any], retried_by: str) -> str:
    """What became of the tasks that hit Redis while it was down, as measured."""
    failed, again = r["failed_attempts"], r["reexecuted"]
    if not failed:
        return "no task attempt failed on it"
    rerun = f"{again} jobs were run again by {retried_by}" if again else "none was run again"
    return f"{failed} task attempts failed on Redis during the outage and {rerun}"


def _inprocess_mechanism(fault: str, d: dict[str, Any], r: dict[str, Any]) -> str:
    if fault == "kill-worker":
        return (
            "BackgroundTasks live only in the API process's memory, so every task queued or running in it "
            "died with it: nothing persists them and nothing retries them"
        )
    if fault == "deploy":
        if r["lost"] == 0:
            return (
                "uvicorn's graceful shutdown waits for in-flight requests, and a request's BackgroundTasks "
                "run inside it, so the tasks already accepted finished before the process exited"
            )
        return "tasks still queued in the API process when its shutdown grace period ran out died with it"
    if fault == "broker-restart":
        if r["failed_attempts"]:
            return (
                "enqueueing needs no broker, but send_email's send-once guard needs Redis and "
                f"BackgroundTasks do not retry: {r['failed_attempts']} emails that ran while Redis was down "
                "failed and were lost"
            )
        return (
            "enqueueing needs no broker and no email failed: tasks that had sent theirs waited for Redis to "
            "record it, holding the threadpool tokens the API's own requests need (slowest answer "
            f"{r['outage']['max_latency_ms']:.0f} ms)"
        )
    return (
        "BackgroundTasks have no retry: a failing task is logged and dropped, its failure visible only in "
        "the API process's memory"
    )


def _celery_mechanism(fault: str, d: dict[str, Any], r: dict[str, Any]) -> str:
    vt, sweep = d.get("visibility_timeout_s", 3600), d.get("unacked_sweep_s", 100)
    retries = d.get("retries", "none")
    if fault == "kill-worker" or (fault == "deploy" and not r.get("graceful", True)):
        if d.get("acks_late"):
            return (
                "Celery acks late, so the killed worker's messages stayed in kombu's unacked hash and were "
                f"redelivered once the {vt} s visibility timeout passed (swept every {sweep} s)"
            )
        return (
            "Celery acks a message when its task starts, so the running tasks were gone at the kill, and "
            f"prefetched messages wait in kombu's unacked hash for the {vt} s visibility timeout, longer "
            f"than the {r['watched_s']:.0f} s watched"
        )
    if fault == "deploy":
        return (
            "SIGTERM is Celery's warm shutdown: the pool finishes the tasks it is running and unacked "
            "prefetched messages go back to the queue when the worker closes its connection"
        )
    if fault == "broker-restart":
        told = "Redis's AOF kept the queue and the worker reconnected; " + _outage(r, "autoretry_for")
        if held := r["unfinished"].get("held"):
            told += (
                f"; {held} messages it had prefetched before the outage stay in kombu's unacked hash until "
                f"the {vt} s visibility timeout"
            )
        return told
    if retries != "none":
        return (
            f"autoretry_for retried the SMTP refusals ({retries}); a task that exhausts them is stored as "
            "FAILURE in the result backend, and Celery has no dead-letter queue"
        )
    return (
        "Celery retries nothing by default: the first refusal ended the task as FAILURE in the result "
        "backend (visible through /jobs), and there is no dead-letter queue"
    )


def _rq_mechanism(fault: str, d: dict[str, Any], r: dict[str, Any]) -> str:
    retry = d.get("retry", "none")
    jmi, maint, block = (
        d.get("job_monitoring_interval_s"),
        d.get("maintenance_interval_s"),
        d.get("idle_dequeue_block_s"),
    )
    if fault == "kill-worker" or (fault == "deploy" and not r.get("graceful", True)):
        timing = (
            f"its heartbeat deadline ({jmi} s + 60 s) has passed and a worker's maintenance runs (every "
            f"{maint} s, but only between dequeues, which block {block} s when idle)"
        )
        if retry != "none":
            return (
                f"RQ re-enqueues a killed job once {timing}, because the job has Retry left; a job dequeued "
                "but not yet started waits over a minute in RQ's intermediate queue before the same happens"
            )
        return (
            f"without Retry, RQ moves a killed job to the FailedJobRegistry once {timing}: it never re-runs"
        )
    if fault == "deploy":
        return "SIGTERM is RQ's warm shutdown: the worker finishes the job in hand and the rest wait in Redis"
    if fault == "broker-restart":
        return "Redis's AOF kept the queue and the workers retried their connection with backoff; " + _outage(
            r, retry if retry != "none" else "nothing"
        )
    if retry != "none":
        return (
            f"RQ re-ran each refused job per {retry} (the worker's scheduler waits out the intervals); a "
            f"job that exhausts it goes to the FailedJobRegistry, kept {d.get('failure_ttl_s')} s"
        )
    return "RQ retries nothing by default: the first refusal moved each job to the FailedJobRegistry"


def _dramatiq_mechanism(fault: str, d: dict[str, Any], r: dict[str, Any]) -> str:
    rel = d.get("reliability", {})
    hb_s = rel.get("heartbeat_timeout_ms", 60_000) / 1000
    share = rel.get("maintenance_chance_per_million", 1000) / 1e4
    backoff_s = rel.get("min_backoff_ms", 15_000) / 1000
    retries = f"max_retries {rel.get('max_retries')}, backoff from {backoff_s:g} s"
    if fault == "kill-worker" or (fault == "deploy" and not r.get("graceful", True)):
        came_back = f", which did not happen within the {r['watched_s']:.0f} s watched" if r["lost"] else ""
        return (
            "Dramatiq acks late: the killed worker's messages stayed in its acks set until queue "
            f"maintenance, run on {share:g} % of broker calls, found its heartbeat older than {hb_s:g} s "
            "and requeued them" + came_back
        )
    if fault == "deploy":
        return "on SIGTERM Dramatiq requeues prefetched messages and lets running actors finish, then exits"
    if fault == "broker-restart":
        return "Redis's AOF kept the queue and the consumers reconnected; " + _outage(
            r, f"the Retries middleware ({retries})"
        )
    return (
        f"the Retries middleware retried the refusals ({retries}, doubling with jitter); a message that "
        "exhausts them goes to the dead-letter queue default.XQ"
    )


MECHANISMS: dict[str, Callable[[str, dict[str, Any], dict[str, Any]], str]] = {
    "inprocess": _inprocess_mechanism,
    "celery": _celery_mechanism,
    "rq": _rq_mechanism,
    "dramatiq": _dramatiq_mechanism,
}


# -- one cell -------------------------------------------------------------------------------------------


class Cancelled(RuntimeError):
    """The run was interrupted; the cell's stack is being torn down."""


@dataclass
class FaultContext:
    cell: Cell
    params: FaultParams
    stack: Stack
    sink: Sink
    described: dict[str, Any]
    cancel: threading.Event
    progress: ProgressSink
    accepted: list[str] = field(default_factory=list)
    refused: int = 0
    notes: list[str] = field(default_factory=list)

    def redis_client(self) -> redis.Redis:
        return redis.Redis.from_url(self.stack.redis_url, socket_timeout=2, socket_connect_timeout=2)

    def client(self) -> ApiClient:
        return ApiClient(self.stack.api_url, self.stack.api_key, connections=self.params.burst_concurrency)

    def phase(self, text: str) -> None:
        self.progress.phase(f"faults {self.cell.tag}: {text}")

    def check(self) -> None:
        if self.cancel.is_set():
            raise Cancelled(self.cell.tag)

    async def burst(self, n: int, label: str, *, counted: bool = True) -> loadgen.BurstResult:
        """Send ``n`` emails as fast as the API takes them; keep the accepted ids (if ``counted``)."""
        async with self.client() as client:
            result = await loadgen.burst(
                lambda i: client.send_mail(f"{label}{i}@example.com", f"{self.cell.fault} #{i}", "Fault run"),
                n,
                self.params.burst_concurrency,
            )
        if counted:
            self.accepted += result.job_ids
        self.refused += result.errors
        if result.errors:
            reason = result.error_samples[0].split(":", 1)[0]
            self.notes.append(f"{result.errors} of {n} requests refused ({reason})")
        return result

    def wait_for_deliveries(self, count: int, timeout_s: float = 120.0) -> None:
        """Block until ``count`` emails arrived, then half an SMTP delay more: the next sends are mid-way."""
        deadline = time.monotonic() + timeout_s
        while sum(deliveries(self.sink.mailbox).values()) < count:
            self.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.cell.tag}: {count} deliveries did not arrive in {timeout_s:.0f} s")
            time.sleep(0.01)
        time.sleep(self.params.smtp_delay_ms / 2000)

    def probe(self) -> str | None:
        """Post one log job once the runner is back; its completion marks that the runner serves again."""
        for _ in range(PROBE_ATTEMPTS):
            try:
                response = httpx.post(
                    f"{self.stack.api_url}/log/",
                    json={"msg": "fault-probe"},
                    headers={"X-API-Key": self.stack.api_key},
                    timeout=HANG_S,
                )
                if response.status_code == 200:
                    return str(response.json()["job_id"])
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.notes.append("the API did not accept a probe job after the fault")
        return None

    def restart_dead(self) -> None:
        """Restart a worker (or API) that died on its own, as compose's ``restart: unless-stopped`` would."""
        dead = self.stack.failed()
        if self.stack.worker_name in dead:
            status = dead[self.stack.worker_name]
            self.notes.append(f"{self.stack.worker_name} exited by itself (status {status}), restarted")
            self.stack.restart_workers()
        if "api" in dead and self.stack.worker_name != "api":
            self.notes.append(f"the API exited by itself (status {dead['api']})")

    def watch(self, until: float, probe_id: str | None) -> None:
        """Poll until nothing more can happen to the accepted jobs (or ``until``).

        Nothing more can happen once the probe ran, the broker holds none of the jobs for a worker any more
        (so none can run again and duplicate an email) and either every email arrived or nothing new has
        happened for QUIET_S.
        """
        ids = set(self.accepted)
        client = self.redis_client()
        last_seen, last_change = (-1, -1), time.monotonic()
        try:
            while time.time() < until:
                self.check()
                delivered = deliveries(self.sink.mailbox)
                events = ledger_by_id(self.stack.ledger_path, ids | ({probe_id} if probe_id else set()))
                probe_done = probe_id is None or any(e.ok for e in events.get(probe_id, []))
                seen = (sum(delivered.values()), sum(len(v) for v in events.values()))
                if seen != last_seen:
                    last_seen, last_change = seen, time.monotonic()
                all_arrived = all(delivered[job_id] for job_id in ids)
                quiet = time.monotonic() - last_change >= QUIET_S
                if probe_done and (all_arrived or quiet) and self._settled(client, ids):
                    return
                time.sleep(POLL_S)
        finally:
            client.close()

    def _settled(self, client: redis.Redis, ids: set[str]) -> bool:
        try:
            return pending(broker_holdings(self.cell.runner, client, ids)) == 0
        except redis.RedisError:
            return False  # Redis is restarting: ask again on the next poll

    def tally(
        self, fault_at: float, leased: set[str], probe_id: str | None, watched_s: float
    ) -> dict[str, Any]:
        ids = set(self.accepted)
        delivered = deliveries(self.sink.mailbox)
        events = ledger_by_id(self.stack.ledger_path, ids | ({probe_id} if probe_id else set()))
        ran_again = {
            job_id
            for job_id, found in events.items()
            if job_id in ids and (len(found) > 1 or any(e.attempt > 1 for e in found) or job_id in leased)
        }
        finishes = [
            e.finished_at for found in events.values() for e in found if e.ok and e.finished_at >= fault_at
        ]
        missing = {job_id for job_id in ids if not delivered[job_id]}
        unfinished: dict[str, int] = {}
        client = self.redis_client()
        try:
            unfinished = broker_holdings(self.cell.runner, client, missing) if missing else {}
        except redis.RedisError as exc:
            self.notes.append(f"could not read the broker's holdings: {exc}")
        finally:
            client.close()
        held = {where: count for where, count in unfinished.items() if count}
        if held:
            # Counted as lost for this watch, but not gone: say where they wait, so no reader mistakes a
            # slow redelivery for a dropped message.
            where = ", ".join(f"{count} {place}" for place, count in held.items())
            self.notes.append(f"of the lost, still in Redis when the watch ended: {where}")
        failed_but_sent = [i for i in ids if delivered[i] and not any(e.ok for e in events.get(i, []))]
        if failed_but_sent:
            self.notes.append(
                f"{len(failed_but_sent)} jobs without a successful run although their email went out"
            )
        return {
            "expected": len(ids),
            "lost": len(missing),
            "reexecuted": len(ran_again),
            "duplicate_effects": sum(1 for job_id in ids if delivered[job_id] > 1),
            "recovery_s": round(max(finishes) - fault_at, 2) if finishes else None,
            "completed": sum(1 for job_id in ids if any(e.ok for e in events.get(job_id, []))),
            "failed_attempts": sum(1 for job_id in ids for e in events.get(job_id, []) if not e.ok),
            "in_flight_at_fault": len(leased & ids),
            "refused": self.refused,
            "watched_s": round(watched_s, 1),
            "unfinished": unfinished,
        }


async def kill_worker(ctx: FaultContext) -> dict[str, Any]:
    """SIGKILL the worker's whole tree mid-burst, then start it again."""
    return await _interrupt_burst(ctx, signal.SIGKILL)


async def deploy(ctx: FaultContext) -> dict[str, Any]:
    """SIGTERM mid-burst like a rolling deploy; SIGKILL only once compose's grace period ran out."""
    return await _interrupt_burst(ctx, signal.SIGTERM)


async def _interrupt_burst(ctx: FaultContext, sig: int) -> dict[str, Any]:
    p, stack = ctx.params, ctx.stack
    sending = asyncio.create_task(ctx.burst(p.n, "fault"))
    await asyncio.to_thread(ctx.wait_for_deliveries, p.fault_after)
    ctx.phase(f"{signal.Signals(sig).name} to {stack.worker_name} after {p.fault_after} deliveries")
    fault_at = time.time()
    await asyncio.to_thread(stack.kill_workers, sig)
    extra: dict[str, Any] = {}
    if sig == signal.SIGTERM:
        exited = await asyncio.to_thread(_wait_exit, ctx, p.deploy_grace_s)
        extra["graceful"] = exited
        extra["shutdown_s"] = round(time.time() - fault_at, 2) if exited else None
        if exited:
            ctx.notes.append(f"graceful shutdown in {extra['shutdown_s']:g} s")
        else:
            ctx.notes.append(f"SIGKILLed after the {p.deploy_grace_s:.0f} s grace period")
            await asyncio.to_thread(stack.kill_workers, signal.SIGKILL)
    client = ctx.redis_client()
    try:
        # The old tree is gone: a lease still held belongs to an attempt that was cut off mid-send.
        leased, lease_left_s = leased_ids(client)
    finally:
        client.close()
    restarted = time.time()
    await asyncio.to_thread(stack.restart_workers)
    extra["restart_s"] = round(time.time() - restarted, 2)
    await sending
    probe_id = await asyncio.to_thread(ctx.probe)
    backlog_s = p.n * p.smtp_delay_ms / 1000 / p.slots
    bound = redelivery_bound_s(ctx.cell.runner, ctx.described)
    grace = p.deploy_grace_s if sig == signal.SIGTERM else 0.0
    window, why = watch_window(bound, lease_left_s, backlog_s + grace + extra["restart_s"], p)
    ctx.phase(f"watching up to {window:.0f} s ({why})")
    await asyncio.to_thread(ctx.watch, fault_at + window, probe_id)
    ctx.notes.append(f"watched {time.time() - fault_at:.0f} s ({why})")
    return {**ctx.tally(fault_at, leased, probe_id, time.time() - fault_at), **extra}


def _wait_exit(ctx: FaultContext, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while ctx.stack.worker_name not in ctx.stack.failed():
        ctx.check()
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


async def broker_restart(ctx: FaultContext) -> dict[str, Any]:
    """Stop Redis mid-burst (SIGTERM: the AOF is flushed), keep it down ``outage_s``, start it again."""
    p, stack = ctx.params, ctx.stack
    if stack.redis is None:
        raise RuntimeError("broker-restart needs the stack's own Redis")
    sending = asyncio.create_task(ctx.burst(p.n, "fault"))
    await asyncio.to_thread(ctx.wait_for_deliveries, p.fault_after)
    ctx.phase(f"stopping Redis for {p.outage_s:g} s after {p.fault_after} deliveries")
    fault_at = time.time()
    probing = asyncio.create_task(outage_probe(ctx, p.outage_s + 2.0))
    await asyncio.to_thread(stack.redis.stop)
    down_at = time.time()
    await asyncio.sleep(p.outage_s)
    await asyncio.to_thread(stack.redis.start)
    up_at = time.time()
    answers = await probing
    await sending
    await asyncio.to_thread(ctx.restart_dead)
    probe_id = await asyncio.to_thread(ctx.probe)
    window = p.outage_s + p.n * p.smtp_delay_ms / 1000 / p.slots + p.patience_s / 2
    await asyncio.to_thread(ctx.watch, fault_at + window, probe_id)
    await asyncio.to_thread(ctx.restart_dead)
    during = [a for a in answers if down_at <= a[0] <= up_at]
    kinds = Counter(kind for _, kind, _ in during)
    outage = {
        "down_s": round(up_at - down_at, 2),
        "requests": len(during),
        "answers": {kind: kinds.get(kind, 0) for kind in ("200", "503", "other", "hang")},
        "max_latency_ms": round(max((ms for *_, ms in during), default=0.0), 1),
    }
    counts = ", ".join(f"{n} x {kind}" for kind, n in outage["answers"].items() if n or kind == "hang")
    slowest = outage["max_latency_ms"]
    ctx.notes.append(f"API during the {outage['down_s']:.0f} s outage: {counts}, slowest {slowest:.0f} ms")
    return {**ctx.tally(fault_at, set(), probe_id, time.time() - fault_at), "outage": outage}


async def outage_probe(ctx: FaultContext, duration_s: float) -> list[tuple[float, str, float]]:
    """POST an email at a fixed rate for ``duration_s``: (sent at, "200"|"503"|"other"|"hang", latency ms).

    Accepted emails join the expected set: a job the API accepted during an outage must not be lost either.
    """
    answers: list[tuple[float, str, float]] = []
    async with httpx.AsyncClient(
        base_url=ctx.stack.api_url, headers={"X-API-Key": ctx.stack.api_key}, timeout=HANG_S
    ) as client:

        async def one(i: int) -> None:
            sent_at, began = time.time(), time.perf_counter()
            try:
                response = await client.post(
                    "/send-mail/", json={"email": f"outage{i}@example.com", "subject": "Outage", "body": "x"}
                )
                kind = str(response.status_code) if response.status_code in (200, 503) else "other"
                if response.status_code == 200:
                    ctx.accepted.append(str(response.json()["job_id"]))
            except httpx.TimeoutException:
                kind = "hang"
            except httpx.HTTPError:
                kind = "other"
            answers.append((sent_at, kind, (time.perf_counter() - began) * 1000))

        tasks = []
        for i in range(round(duration_s * ctx.params.outage_probe_hz)):
            tasks.append(asyncio.create_task(one(i)))
            await asyncio.sleep(1 / ctx.params.outage_probe_hz)
        await asyncio.gather(*tasks)
    return answers


async def task_error(ctx: FaultContext) -> dict[str, Any]:
    """Emails the sink refuses ``fail_first`` times each, then accepts: are they retried, is it visible?

    One more email goes to a recipient the sink always refuses: where does a job that exhausts its retries go?
    """
    p = ctx.params
    began = time.time()
    ctx.phase(f"{p.error_n} emails refused {p.fail_first}x each, and one refused always")
    poison = await ctx.burst(1, POISON_PREFIX, counted=False)
    await ctx.burst(p.error_n, "flaky")
    await asyncio.to_thread(ctx.watch, began + p.patience_s, None)
    result = ctx.tally(began, set(), None, time.time() - began)
    delivered = [m.received_at for m in read_mailbox(ctx.sink.mailbox)]
    result["recovery_s"] = round(max(delivered) - began, 2) if delivered else None
    result["job_states"] = await asyncio.to_thread(job_states, ctx, ctx.accepted)
    states = ", ".join(f"{n} {state}" for state, n in result["job_states"].items())
    ctx.notes.append(f"{result['failed_attempts']} failed attempts in the ledger; /jobs: {states}")
    if poison.job_ids:
        result["exhausted"] = await asyncio.to_thread(exhausted_job, ctx, poison.job_ids[0])
    return result


def exhausted_job(ctx: FaultContext, job_id: str) -> dict[str, Any]:
    """Follow the always-refused job until it leaves the queue (or ``POISON_WAIT_S``): where did it end up?"""
    deadline = time.monotonic() + min(ctx.params.watch_s, POISON_WAIT_S)
    client = ctx.redis_client()
    try:
        while True:
            ctx.check()
            where = broker_holdings(ctx.cell.runner, client, {job_id})
            if pending(where) == 0 or time.monotonic() > deadline:
                break
            time.sleep(POLL_S * 5)
    finally:
        client.close()
    attempts = len(ledger_by_id(ctx.stack.ledger_path, {job_id}).get(job_id, []))
    state = job_states(ctx, [job_id])
    found = [name for name, count in where.items() if count] or ["dropped"]
    ctx.notes.append(
        f"an always-refused email: {attempts} attempts, then {', '.join(found)} "
        f"(kept in: {EXHAUSTED_TO[ctx.cell.runner]})"
    )
    return {
        "attempts": attempts,
        "where": where,
        "api_state": next(iter(state), None),
        "kept_in": EXHAUSTED_TO[ctx.cell.runner],
    }


EXHAUSTED_TO = {
    "inprocess": "nowhere: only logged, its state in the API's memory",
    "celery": "result backend (FAILURE); no dead-letter queue",
    "rq": "FailedJobRegistry (rq:failed:fbt)",
    "dramatiq": "dead-letter queue (dramatiq:default.XQ)",
}


def job_states(ctx: FaultContext, job_ids: list[str]) -> dict[str, int]:
    """What GET /jobs/{id} answers for these jobs: is a failure visible through the API?"""
    states: Counter[str] = Counter()
    with httpx.Client(
        base_url=ctx.stack.api_url, headers={"X-API-Key": ctx.stack.api_key}, timeout=HANG_S
    ) as c:
        for job_id in job_ids:
            try:
                response = c.get(f"/jobs/{job_id}")
                states[
                    response.json()["state"] if response.status_code == 200 else str(response.status_code)
                ] += 1
            except (httpx.HTTPError, ValueError, KeyError):
                states["error"] += 1
    return dict(states)


FAULT_RUNS = {
    "kill-worker": kill_worker,
    "deploy": deploy,
    "broker-restart": broker_restart,
    "task-error": task_error,
}


def cell_settings(cell: Cell, params: FaultParams, sink: Sink, workdir: Path) -> Settings:
    options: dict[str, Any] = {}
    if params.smtp_timeout_s is not None:
        options["smtp_timeout_s"] = params.smtp_timeout_s
    return Settings(
        backend=cell.runner,  # type: ignore[arg-type]
        queue_config=cell.config,  # type: ignore[arg-type]
        worker_processes=params.worker_processes,
        worker_threads=params.worker_threads,
        api_threadpool=params.slots if params.api_threadpool is None else params.api_threadpool,
        access_log=False,
        port=0,  # a free port: never a well-known one on a shared machine
        smtp_host="127.0.0.1",
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
    progress.phase(f"faults {cell.tag}: starting the stack")
    with smtp_sink(
        workdir, params.smtp_delay_ms, params.fail_first if erring else 0, POISON_PREFIX if erring else ""
    ) as sink:
        settings = cell_settings(cell, params, sink, workdir)
        with Stack(settings, workdir=workdir, start_smtp=False, redis_appendonly=True) as stack:
            described = describe_runner(stack.settings)
            ctx = FaultContext(cell, params, stack, sink, described, cancel or threading.Event(), progress)
            result = asyncio.run(FAULT_RUNS[cell.fault](ctx))
            record = {
                "runner": cell.runner,
                "config": cell.config,
                "fault": cell.fault,
                **result,
                "mechanism": mechanism(cell, described, result),
                "notes": "; ".join(ctx.notes),
                # The configuration in force (the runner's describe()), which the mechanism is derived from.
                "configuration": described,
            }
            if cell.runner == "inprocess":
                record["notes"] = "; ".join(["no queue to configure", *ctx.notes])
            return FaultRun(record=record, accepted=list(ctx.accepted), mailbox=sink.mailbox)


def failed_cell(cell: Cell, error: BaseException, workdir: Path) -> dict[str, Any]:
    """A record that says the cell could not be measured (never a silent gap in the table)."""
    tail = log_tail(workdir / "logs" / "worker.log", lines=5) if (workdir / "logs").exists() else ""
    return {
        "runner": cell.runner,
        "config": cell.config,
        "fault": cell.fault,
        "expected": 0,
        "lost": 0,
        "reexecuted": 0,
        "duplicate_effects": 0,
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
    order = sorted(cells, key=_likely_wait_s, reverse=True)
    results: dict[Cell, dict[str, Any]] = {}

    def one(cell: Cell) -> None:
        workdir = workroot / cell.tag.replace("/", "-")
        try:
            results[cell] = run_cell(cell, params, workdir, cancel=cancel, progress=progress).record
        except Cancelled:
            return
        except Exception as exc:
            results[cell] = failed_cell(cell, exc, workdir)
        progress.phase(f"faults {cell.tag}: {_summary(results[cell])}")

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


def _likely_wait_s(cell: Cell) -> float:
    """A rough guess of a cell's length from past runs, only to start the long ones first."""
    if cell.fault == "kill-worker" and cell.runner != "inprocess":
        return 100 if cell.config == "defaults" else 60
    if cell.fault == "task-error" and cell.runner == "dramatiq" and cell.config == "defaults":
        return 110  # Dramatiq's default retry backoff starts at 15 s and doubles
    return 15


def _summary(record: dict[str, Any]) -> str:
    recovery = "never" if record["recovery_s"] is None else f"{record['recovery_s']:g} s"
    return (
        f"{record['lost']}/{record['expected']} lost, {record['reexecuted']} re-executed, "
        f"{record['duplicate_effects']} duplicated, recovery {recovery}"
    )


# -- results documents ------------------------------------------------------------------------------------


def parameters(params: FaultParams) -> dict[str, Any]:
    """The fault parameters, as recorded under ``parameters.faults`` in results.json."""
    return asdict(params)


def compare_pass(
    runners: tuple[str, ...], workroot: Path, progress: ProgressSink | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """The short pass ``fbt-bench compare`` runs: kill-worker in both configurations for every runner.

    Returns the fault records and a warning per cell that could not be measured.
    """
    records = run_faults(matrix(runners, CONFIGS, ("kill-worker",)), SHORT, workroot / "faults", progress)
    return records, not_measured(records)


def not_measured(records: list[dict[str, Any]]) -> list[str]:
    return [
        f"fault {r['runner']}/{r['config']}/{r['fault']}: {r['notes']}" for r in records if r.get("error")
    ]


def standalone_document(
    records: list[dict[str, Any]], params: FaultParams, command: str | None = None
) -> dict[str, Any]:
    """A results document holding only fault records (``fbt-bench faults``): no scenario records."""
    from fbt_bench.environment import describe_environment
    from fbt_bench.profiles import PROFILES
    from fbt_bench.results import finalize, new_document

    described: dict[str, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: r["config"] != "safe"):  # the safe configuration first
        described.setdefault(record["runner"], record.get("configuration", {}))
    document = new_document(
        profile="faults",
        topology="local",
        environment=describe_environment(None),
        parameters={
            # The schema's benchmark parameters: no scenario ran, so their sizes are zero.
            "slots": params.slots,
            "worker_processes": params.worker_processes,
            "worker_threads": params.worker_threads,
            "repeats": 1,
            "slo_ms": PROFILES["default"].slo_ms,
            "enqueue_rates": [],
            "enqueue_duration_s": 0,
            "log_burst_n": 0,
            "email_n": params.n,
            "smtp_delay_ms": params.smtp_delay_ms,
            "cpu_n": 0,
            "probe_rate_hz": 0,
            "mixed_rate": 0,
            "mixed_duration_s": 0,
            "runner_order": [],
            "scenarios": [],
            "faults": parameters(params),
        },
        runners=described,
    )
    if command:
        document["command"] = command
    document["faults"] = records
    missing = not_measured(records)
    document["warnings"].extend(missing)
    return finalize(document, partial_reason=f"{len(missing)} fault cells not measured" if missing else None)
