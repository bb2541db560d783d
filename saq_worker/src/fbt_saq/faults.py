"""What the SAQ runner knows about its own behaviour under faults (``fbt_tasks.runner.FaultModel``).

Read by the fault harness: SAQ's Redis keys for our queue (``fbt_saq.wire``), when its sweep puts a killed
worker's job back, and one sentence per fault on why SAQ, configured as ``describe()`` recorded, behaved so.
"""

import json
import uuid
from collections.abc import Mapping
from typing import Any

from saq.job import Status

from fbt_saq.queue_configs import SWEEP_ABORT_WAIT_S
from fbt_saq.wire import ACTIVE_KEY, INCOMPLETE_KEY, QUEUED_KEY, job_id, key_of
from fbt_tasks.fault_words import (
    api_restart,
    crash,
    cut,
    executions,
    full,
    malformed,
    outage,
    outlasted,
    slow,
)
from fbt_tasks.holdings import count_ids, inspection_client, reply_bytes
from fbt_tasks.runner import BROKER_TITLES, FaultName, FaultOutcome, Holdings
from fbt_tasks.settings import Settings

FAILED_STATUSES = {Status.FAILED.value, Status.ABORTED.value}
ABORTING = Status.ABORTING.value


def _status(raw: object) -> str | None:
    if raw is None:
        return None
    try:
        found = json.loads(reply_bytes(raw)).get("status")
    except (ValueError, AttributeError):
        return None  # not a job SAQ can read (a malformed one): in no store of SAQ's either
    return str(found) if found is not None else None


def _failed(raw: object) -> bool:
    return _status(raw) in FAILED_STATUSES


class SAQFaults:
    exhausted_to = (
        "its own job key saq:job:fbt:<id> with status failed (SAQ keeps no failed list), for Job.ttl"
    )

    def message_locations(self, settings: Settings) -> list[str]:  # noqa: ARG002 (FaultModel's signature)
        return [QUEUED_KEY, ACTIVE_KEY, INCOMPLETE_KEY, job_id("<id>")]

    def holdings(self, settings: Settings, ids: set[str]) -> Holdings:
        with inspection_client(settings) as client:
            queued_members = client.lrange(QUEUED_KEY, 0, -1)
            active_members = client.lrange(ACTIVE_KEY, 0, -1)
            # Unfinished ids scored with a future due time: a delayed job or a retry waiting out retry_delay.
            waiting = client.zrangebyscore(INCOMPLETE_KEY, "(0", "+inf")
            listed = {key_of(reply_bytes(m)) for m in [*queued_members, *active_members]}
            scheduled = [m for m in waiting if key_of(reply_bytes(m)) not in listed]
            wanted = sorted(ids)
            stored = client.mget([job_id(key) for key in wanted]) if wanted else []
            # A swept job waits out its abort in the sweep's hands, in no list, stored as aborting; the sweep
            # then retries it (see redelivery_bound_s). Held, not lost, unless that worker dies meanwhile.
            everywhere = listed | {key_of(reply_bytes(m)) for m in waiting}
            sweeping = sum(
                1
                for key, raw in zip(wanted, stored, strict=True)
                if key not in everywhere and _status(raw) == ABORTING
            )
            return Holdings(
                queued=count_ids(queued_members, ids, key_of),
                held=count_ids(active_members, ids, key_of) + sweeping,
                scheduled=count_ids(scheduled, ids, key_of),
                failed=sum(1 for raw in stored if _failed(raw)),
            )

    def visibility_timeout_s(self, described: Mapping[str, Any]) -> float | None:  # noqa: ARG002 (FaultModel's signature)
        return None  # a delayed job waits in the incomplete sorted set, apart from delivered ones

    def inject_malformed(self, settings: Settings) -> str:
        """A job key whose value is not JSON, queued exactly as SAQ's enqueue script queues a job."""
        marker = f"poison-{uuid.uuid4().hex}"
        with inspection_client(settings) as client:
            client.set(job_id(marker), f"{{not json {marker}")
            client.zadd(INCOMPLETE_KEY, {job_id(marker): 0})
            client.rpush(QUEUED_KEY, job_id(marker))
        return marker

    def malformed_whereabouts(self, settings: Settings, marker: str) -> str:
        where = self.holdings(settings, {marker})
        if where["held"]:
            return f"held in the active list ({ACTIVE_KEY}) for good"
        if where["queued"]:
            return f"still queued ({QUEUED_KEY})"
        with inspection_client(settings) as client:
            if client.zscore(INCOMPLETE_KEY, job_id(marker)) is not None:
                return f"in the incomplete set ({INCOMPLETE_KEY}) only"
        return "gone: SAQ dropped it"

    def redelivery_bound_s(self, described: Mapping[str, Any]) -> float | None:
        # saq/queue/redis.py sweep: a killed job is retried only with attempts left, once it is stuck (untouched
        # for heartbeat s, or running past its timeout); the sweep runs every sweep_interval_s under a lock of
        # the same length (one a killed worker may still hold). It takes the stuck jobs one at a time and waits
        # SWEEP_ABORT_WAIT_S on each for an abort a dead worker never acknowledges, so a killed tree's slots
        # come back one wait apart; a retry with retry_delay then waits that long plus a schedule pass.
        if int(described.get("retries", 1)) <= 1:
            return None
        limits = [float(described[k]) for k in ("heartbeat_s", "job_timeout_s") if float(described.get(k, 0))]
        if not limits:
            return None
        sweep = float(described["sweep_interval_s"])
        delay = float(described.get("retry_delay_s", 0)) + float(described["schedule_interval_s"])
        return min(limits) + 2 * sweep + SWEEP_ABORT_WAIT_S * int(described.get("slots", 1)) + delay

    def mechanism(self, fault: FaultName, described: Mapping[str, Any], result: FaultOutcome) -> str:
        sentence = self._mechanism(fault, described, result)
        if result.duplicates:
            sentence += (
                "; a job ran twice where SAQ's sweep caught it between its dequeue and its start and retried it "
                "after it finished (tobymao/saq#277)"
            )
        return sentence

    def _mechanism(self, fault: FaultName, described: Mapping[str, Any], result: FaultOutcome) -> str:
        d, r = described, result
        retries, sweep = int(d.get("retries", 1)), d.get("sweep_interval_s")
        if fault == "api-deploy":
            return api_restart(result, BROKER_TITLES.get(str(described.get("broker_name", "redis")), "Redis"))
        if fault == "slow-link":
            return slow(result)
        if fault == "partition":
            if r.cut_off == "api":
                return cut(r)
            what = "the heartbeat after which SAQ's sweep retries a job no worker touched"
            return f"{outlasted(r, self.redelivery_bound_s(d), what)}; {cut(r)}"
        if fault == "kill-worker" or (fault == "deploy" and r.killed):
            found = (
                f"SAQ's sweep (every {sweep} s) finds a killed worker's job stuck once it is untouched for "
                f"{d.get('heartbeat_s')} s (the job function's heartbeat stopped)"
                if d.get("heartbeat_s")
                else f"SAQ's sweep (every {sweep} s) finds a killed worker's job stuck once it has run past its "
                f"{d.get('job_timeout_s')} s timeout"
            )
            if retries > 1:
                return (
                    f"{found}, marks it aborting, waits {SWEEP_ABORT_WAIT_S:.0f} s for the dead worker to "
                    "acknowledge the abort and retries it (attempts left); one sweep takes the stuck jobs one "
                    "after another, so the last of a killed tree's jobs comes back a wait per job later, and a "
                    "job whose sweeping worker dies during its wait stays aborting in no list, never retried"
                )
            return (
                f"{found} and, with one attempt (SAQ's retries=1), finishes it as aborted: it never re-runs"
            )
        if fault == "deploy":
            if d.get("shutdown_grace_period_s"):
                return (
                    "on SIGTERM each saq process stops taking jobs and lets the jobs in hand finish (up to "
                    f"{d.get('shutdown_grace_period_s')} s); the rest wait in Redis"
                )
            return (
                "on SIGTERM SAQ cancels the jobs in hand at once (no grace period by default) and requeues them "
                "as 'cancelled', so work already done can run again"
            )
        if fault == "broker-restart":
            return "Redis's AOF kept the queue and the workers' redis-py clients reconnected; " + outage(
                r, "SAQ's retries" if retries > 1 else "nothing"
            )
        if fault == "broker-crash":
            return crash(r) + "; the workers' redis-py clients reconnected"
        if fault == "broker-full":
            return (
                "SAQ enqueues through one Lua script, which a full Redis refuses whole, so a refused job was never "
                f"stored; {full(r)}; " + outage(r, "SAQ's retries" if retries > 1 else "nothing")
            )
        if fault == "delay-past-timeout":
            return (
                "SAQ keeps a delayed job in its incomplete sorted set, scored with its due time, until a "
                f"worker's schedule pass (every {d.get('schedule_interval_s')} s) queues it; no timeout hands "
                f"it out twice: {executions(r)}"
            )
        if fault == "poison-message":
            return (
                "SAQ reads the job JSON right after BLMOVE took its id to the active list; it cannot, and the "
                "worker drops the error without a log line; every later sweep pass stops at that entry with "
                "'Upkeep task failed unexpectedly', so no job behind it in the active list is swept again; "
                + malformed(r)
            )
        if retries > 1:
            return (
                f"SAQ re-ran each refused job, up to {retries} attempts {d.get('retry_delay_s')} s apart "
                "(transient errors only); one that runs out is stored with status failed, kept "
                f"{d.get('ttl_s')} s"
            )
        return (
            "SAQ's default is one attempt: the first refusal stored each job with status failed, kept "
            f"{d.get('ttl_s')} s"
        )


FAULTS = SAQFaults()
