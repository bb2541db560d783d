"""What happened to a cell's jobs, counted where the effects land, and how long to watch for them.

Emails are counted in the sink's mailbox by Message-ID, runs in the ledger, attempts cut off mid-send by
the send-once leases left in Redis, and jobs the broker still holds through the runner's own
``FaultModel.holdings``. ``FaultContext`` is one cell while it runs: what was sent, what was noted, and the
watch that ends once nothing more can happen.
"""

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis

from fbt_bench.faults.model import Cancelled, Cell, FaultParams
from fbt_bench.measuring import loadgen
from fbt_bench.measuring.api_client import ApiClient, RequestError
from fbt_bench.progress import ProgressSink
from fbt_devstack.sink import Sink
from fbt_devstack.smtp_sink import read_mailbox
from fbt_devstack.stack import Stack
from fbt_tasks.ledger import CompletionEvent, read_events
from fbt_tasks.registry import load_runner
from fbt_tasks.runner import BROKER_TITLES, Holdings, Runner, pending

# fbt_tasks.once keeps a lease per email in flight under this prefix (key "email:<message id>").
LEASE_PATTERN = "fbt:once:lease:email:*"
POLL_S = 0.2
# Nothing new for this long, and the broker holds none of the missing jobs: nothing more will happen.
QUIET_S = 3.0
# An API call that takes longer than this during a broker outage counts as a hang (the API promises 503
# within ~2 s); the client gives up at HANG_S so a hang cannot stall the run.
HANG_S = 10.0
PROBE_ATTEMPTS = 20
# On top of the configuration's own bound: stack restart, the backlog and a loaded machine.
MARGIN_S = 15.0
# Faults that kill no consumer: a delivered-unacked job is held by a live worker (waiting out a retry backoff
# or a countdown) and moves when due, long before a dead consumer's redelivery bound. The watch waits for it.
LIVE_HOLD_FAULTS: frozenset[str] = frozenset({"task-error", "delay-past-timeout", "poison-message"})
# A RabbitMQ node's unacked counts come from its CLI (an Erlang VM per call): read at most this often.
NODE_READ_S = 10.0
# The last read of the node's unacked counts decides lost or held: it may wait for a slow CLI on a busy machine.
NODE_READ_TIMEOUT_S = 60.0
# What reading a broker raises while it is down or restarting: each runner's client has its own errors
# (redis-py's, kombu's, pika's) and the harness names no queue library, so any error means "not readable now".
BROKER_READ_ERRORS: tuple[type[BaseException], ...] = (Exception,)


def deliveries(mailbox: Path) -> Counter[str]:
    """Copies received per job id (the Message-ID is ``<job id@fbt.localhost>``)."""
    return Counter(job_id_of(mail.message_id) for mail in read_mailbox(mailbox))


def job_id_of(message_id: str) -> str:
    """The job id a Message-ID carries (``<job id@fbt.localhost>``)."""
    return message_id.strip("<>").split("@", 1)[0]


def duplicates(mailbox: Path, ids: set[str]) -> list[dict[str, Any]]:
    """Recipients of the accepted jobs who received more than one email, and whether every copy carried one
    Message-ID (then a receiver that drops repeated Message-IDs keeps one)."""
    by_recipient: dict[str, list[str]] = {}
    for mail in read_mailbox(mailbox):
        if job_id_of(mail.message_id) in ids:
            by_recipient.setdefault(",".join(mail.to), []).append(mail.message_id)
    return [
        {"recipient": to, "copies": len(found), "same_message_id": len(set(found)) == 1}
        for to, found in sorted(by_recipient.items())
        if len(found) > 1
    ]


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


def watch_window(
    bound_s: float | None, lease_s: float, extra_s: float, params: FaultParams
) -> tuple[float, str]:
    """How long to watch after the fault, and why (a few words for the record's notes).

    ``bound_s`` is the runner's redelivery bound for the configuration in force; ``lease_s``: a redelivered
    email first waits out the send-once lease of its killed attempt.
    """
    if bound_s == 0:
        return extra_s + MARGIN_S, "nothing to redeliver"
    if bound_s is not None and bound_s <= params.patience_s:
        # Past the bound plus a margin: a job still held then is not coming back on time.
        return max(bound_s, lease_s) + extra_s + MARGIN_S, f"redelivery due by ~{bound_s:.0f} s"
    if bound_s is None:
        return params.watch_s + extra_s, "this configuration never redelivers"
    return params.watch_s + extra_s, f"this configuration redelivers only after ~{bound_s:.0f} s"


@dataclass
class FaultContext:
    """One cell while it runs: its stack and sink, what was sent and accepted, and the notes for its record."""

    cell: Cell
    params: FaultParams
    stack: Stack
    sink: Sink
    described: dict[str, Any]  # the runner's describe(): the configuration in force
    cancel: threading.Event
    progress: ProgressSink
    accepted: list[str] = field(default_factory=list)
    refused: int = 0
    notes: list[str] = field(default_factory=list)
    # How far into the next SMTP exchange (a fraction of the sink's delay) the fault lands; drawn per trial.
    mid_send: float = 0.5
    # When the watch last read the RabbitMQ node's unacked counts (monotonic s).
    _node_read_at: float = float("-inf")
    # A later trial on a stack an earlier one used: the mails already in the mailbox, and the send-once leases
    # already in Redis, when it began. Counting by job id keeps the counts apart; these keep the "deliveries
    # so far" that time the fault, and the "a next send holds its lease" that aims it, to this trial's own.
    mail_from: int = 0
    stale_leases: frozenset[str] = frozenset()
    # Every job id this trial sent, counted or not (an uncounted one, e.g. task-error's always-refused email,
    # may still be in the broker when the trial ends: then the next trial gets a fresh stack).
    sent: list[str] = field(default_factory=list)

    @property
    def runner(self) -> Runner:
        return load_runner(self.cell.runner)

    def redis_client(self) -> redis.Redis:
        return redis.Redis.from_url(self.stack.redis_url, socket_timeout=2, socket_connect_timeout=2)

    def client(self, connections: int | None = None) -> ApiClient:
        """The API client; a request that takes longer than HANG_S is given up as a hang."""
        return ApiClient(
            self.stack.api_url,
            self.stack.api_key,
            connections=connections or self.params.burst_concurrency,
            timeout_s=HANG_S,
        )

    def holdings(self, ids: set[str], *, unacked: bool = False) -> dict[str, int]:
        """Where the broker keeps those of ``ids`` it still has; raises the client's error if it is down.

        Empty without a broker (tasks run in the API: nothing outside its memory) or without ids. With
        ``unacked``, a private RabbitMQ node's unacked messages count as held (see ``node_unacked``).
        """
        if not ids or self.stack.settings.broker_name == "none":
            return {}
        found = self.runner.faults.holdings(self.stack.settings, ids)
        extra = 0
        if unacked:
            try:
                extra = self.node_unacked(timeout_s=NODE_READ_TIMEOUT_S)
            except BROKER_READ_ERRORS as exc:
                self.notes.append(
                    f"RabbitMQ's unacked counts unavailable ({exc}): unacked jobs count as lost"
                )
        return {
            "queued": found["queued"],
            "held": found["held"] + extra,
            "scheduled": found["scheduled"],
            "failed": found["failed"],
        }

    def node_unacked(self, timeout_s: float = HANG_S) -> int:
        """Unacked messages over every queue of the stack's own RabbitMQ node (0 without one).

        A runner on RabbitMQ can count only ready messages over AMQP, so a message a live consumer holds (a
        prefetched one, or one waiting out a retry delay) would look gone. The node's own CLI shows it, per
        queue: every message on our private node is this cell's. A CLI call costs about a second of CPU, so
        a watch asks at most every NODE_READ_S (see ``_settled``). Raises RuntimeError or TimeoutError when
        the node does not answer.
        """
        if self.stack.rabbitmq is None:
            return 0
        return sum(unacked for _, unacked in self.stack.rabbitmq.queue_counts(timeout_s=timeout_s).values())

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
        self.sent += result.job_ids
        self.refused += result.errors
        if result.errors:
            reason = result.error_samples[0].split(":", 1)[0]
            self.notes.append(f"{result.errors} of {n} requests refused ({reason})")
        return result

    def wait_for_deliveries(self, count: int, timeout_s: float = 120.0, *, in_flight: bool = False) -> None:
        """Block until ``count`` emails arrived, then ``mid_send`` of an SMTP delay more: the next sends are mid-way.

        With ``in_flight``, the delay runs from the moment a next send holds its send-once lease (waited for up
        to one SMTP delay and a second), not from the delivery: a worker that takes a while between jobs (RQ
        forks a work-horse per job) would otherwise be between sends when the fault lands.
        """
        deadline = time.monotonic() + timeout_s
        while len(read_mailbox(self.sink.mailbox)) - self.mail_from < count:
            self.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.cell.tag}: {count} deliveries did not arrive in {timeout_s:.0f} s")
            time.sleep(0.01)
        if in_flight:
            self._wait_for_a_lease(self.params.smtp_delay_ms / 1000 + 1.0)
        time.sleep(self.params.smtp_delay_ms / 1000 * self.mid_send)

    def _wait_for_a_lease(self, timeout_s: float) -> None:
        """Until an undelivered email's send-once lease is held (a next send is under way), or ``timeout_s``.

        A delivered email's lease lingers a few milliseconds past the sink's answer (the sent record is written
        first), so only leases of emails not yet in the mailbox count.
        """
        deadline = time.monotonic() + timeout_s
        delivered = set(deliveries(self.sink.mailbox))
        client = self.redis_client()
        try:
            while time.monotonic() < deadline:
                self.check()
                keys = client.scan_iter(match=LEASE_PATTERN, count=1000)
                fresh = (key.decode().rsplit(":", 1)[-1] for key in keys)
                if any(job_id not in delivered and job_id not in self.stale_leases for job_id in fresh):
                    return
                time.sleep(0.005)
        except redis.RedisError:
            return  # no answer: fall back to timing from the delivery
        finally:
            client.close()

    async def probe(self) -> str | None:
        """Post one log job once the runner is back; its completion marks that the runner serves again."""
        async with self.client(connections=1) as client:
            for _ in range(PROBE_ATTEMPTS):
                try:
                    outcome = await client.log("fault-probe")
                    if outcome.ok:
                        return outcome.job_id
                except RequestError:
                    pass
                await asyncio.sleep(0.5)
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
        last_seen, last_change = (-1, -1), time.monotonic()
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
            unfinished = sum(1 for job_id in ids if not any(e.ok for e in events.get(job_id, [])))
            if probe_done and (all_arrived or quiet) and self._settled(ids, unfinished):
                return
            time.sleep(POLL_S)

    def _settled(self, ids: set[str], unfinished: int) -> bool:
        """Nothing the broker holds will move before the watch ends: none pending, or (when the redelivery
        bound lies beyond what this pass waits for) only delivered-unacked ones, which wait for that bound.

        ``unfinished`` jobs have no successful attempt yet. Where the bound is within this pass's patience,
        one that is neither pending nor failed keeps the watch going to its end: a library can have a
        killed worker's job out of every place it lists while it recovers it (SAQ's sweep aborts, then
        retries), and stopping then would report a job as held or lost that was only on its way back.

        On a private RabbitMQ node, the node's unacked count is read too, at most every NODE_READ_S.
        """
        try:
            held = self.holdings(ids)
            if held and pending(cast(Holdings, held)) == 0 and self.stack.rabbitmq is not None:
                if time.monotonic() - self._node_read_at < NODE_READ_S:
                    return False
                self._node_read_at = time.monotonic()
                held["held"] += self.node_unacked()
        except BROKER_READ_ERRORS:
            return False  # the broker is restarting: ask again on the next poll
        bound = self.runner.faults.redelivery_bound_s(self.described)
        if not held:
            return True
        if pending(cast(Holdings, held)) == 0:
            in_transit = unfinished > held["failed"]
            return not (in_transit and bound is not None and bound <= self.params.patience_s)
        beyond = (bound is None or bound > self.params.patience_s) and self.cell.fault not in LIVE_HOLD_FAULTS
        return beyond and held["queued"] == 0 and held["scheduled"] == 0

    def grace(self) -> None:
        """Wait ``grace_s`` before the last read, so a redelivery finishing just after the watch is counted."""
        deadline = time.monotonic() + self.params.grace_s
        while time.monotonic() < deadline:
            self.check()
            time.sleep(POLL_S)

    def tally(
        self, fault_at: float, leased: set[str], probe_id: str | None, watched_s: float
    ) -> dict[str, Any]:
        """The cell's counts, read after the grace period: completed, lost, held, failed, re-executed,
        duplicated (by recipient), skipped redeliveries, recovery, and where the missing jobs wait."""
        self.grace()
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
        failed_but_sent = [i for i in ids if delivered[i] and not any(e.ok for e in events.get(i, []))]
        if failed_but_sent:
            self.notes.append(
                f"{len(failed_but_sent)} job{'' if len(failed_but_sent) == 1 else 's'} without a successful run "
                "although the email went out"
            )
        twice = duplicates(self.sink.mailbox, ids)
        return {
            "expected": len(ids),
            "completed": sum(1 for job_id in ids if any(e.ok for e in events.get(job_id, []))),
            # Ran, and every attempt raised: failed, not lost, even where the library keeps no failure store
            # (Celery's defaults has no result backend); the ledger recorded each attempt.
            **self.outcomes(
                missing,
                fault_at,
                sum(1 for i in missing if events.get(i) and not any(e.ok for e in events[i])),
            ),
            "reexecuted": len(ran_again),
            "duplicate_effects": len(twice),
            "duplicates": twice[:20],
            "skipped_redeliveries": sum(1 for i in ids for e in events.get(i, []) if e.skipped),
            "recovery_s": round(max(finishes) - fault_at, 2) if finishes else None,
            "failed_attempts": sum(1 for job_id in ids for e in events.get(job_id, []) if not e.ok),
            "in_flight_at_fault": len(leased & ids),
            "refused": self.refused,
            "watched_s": round(watched_s, 1),
            "grace_s": self.params.grace_s,
        }

    def outcomes(self, missing: set[str], fault_at: float, failed_in_ledger: int = 0) -> dict[str, Any]:
        """Split the jobs whose email never arrived: held (the broker will still hand them out), failed (in
        the library's failure store, or run with every attempt failing in the ledger: ``failed_in_ledger``)
        and lost (nowhere any more, never seen failing). ``held_due_s``: seconds after the fault by which the
        configuration's redelivery bound puts a held job back (None: never)."""
        try:
            found = self.holdings(missing, unacked=True)
        except BROKER_READ_ERRORS as exc:
            self.notes.append(f"could not read the broker's holdings: {exc}; every missing job counted lost")
            found = {}
        pending_now = pending(cast(Holdings, found)) if found else 0
        failed = found.get("failed", 0)
        bound = self.runner.faults.redelivery_bound_s(self.described)
        elapsed = time.time() - fault_at
        if pending_now:
            where = ", ".join(f"{n} {place}" for place, n in found.items() if n and place != "failed")
            due = "never by itself" if bound is None else f"due by ~{bound:.0f} s after the fault"
            broker = BROKER_TITLES[self.stack.settings.broker_name]
            self.notes.append(f"not recovered within {elapsed:.0f} s: still in {broker} ({where}), {due}")
        # Counts per queue (RabbitMQ) may include a message that is not one of ``missing``: never above it.
        pending_now = min(pending_now, len(missing))
        if not pending_now:
            # Nothing left to hand out: a job seen failing in the ledger failed (the library may keep no
            # record of it); with jobs still pending, a failed attempt may be one of theirs, so the store decides.
            failed = max(failed, failed_in_ledger)
        failed = min(failed, len(missing) - pending_now)
        return {
            "lost": max(0, len(missing) - pending_now - failed),
            "held": pending_now,
            "held_where": {k: v for k, v in found.items() if k != "failed"},
            "held_due_s": bound,
            "failed": failed,
            # Nothing missing: the watch ended because there was nothing left to wait for.
            "watch_covers_bound": not missing or (bound is not None and elapsed >= bound),
            "unfinished": found,
        }
