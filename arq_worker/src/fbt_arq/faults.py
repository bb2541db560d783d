"""What the arq runner knows about its own behaviour under faults (``fbt_tasks.runner.FaultModel``).

Read by the fault harness: arq's Redis keys for our queue (fbt_arq.wire), when a killed worker's job runs
again, and one sentence per fault on why arq, configured as ``describe()`` recorded, behaved so.
"""

import uuid
from collections.abc import Mapping
from typing import Any, cast

from arq.constants import expires_extra_ms
from arq.jobs import DeserializationError, deserialize_result
from arq.utils import timestamp_ms

from fbt_arq.wire import QUEUE_NAME, in_progress_key, job_key, loads, result_key
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
from fbt_tasks.holdings import inspection_client, reply_bytes
from fbt_tasks.runner import BROKER_TITLES, FaultName, FaultOutcome, Holdings
from fbt_tasks.settings import Settings


def _failed(raw: object) -> bool:
    """Whether a stored arq result says the job failed (a result we cannot read counts as failed)."""
    if raw is None:
        return False
    try:
        return not deserialize_result(reply_bytes(raw), deserializer=loads).success
    except DeserializationError:
        return True


def _stranded(result: FaultOutcome, in_progress: Any) -> str:
    """Jobs still held after a fault their worker survived or restarted from: their in-progress key outlived it."""
    held = result.held
    if not held:
        return ""
    return (
        f"; {held} held: arq stopped before releasing their in-progress key (a job cancelled before arq's own "
        f"handler ran, or whose outcome it could not write), so they wait out job_timeout + 10 s ({in_progress:g} s)"
    )


class ArqFaults:
    exhausted_to = (
        f"no dead-letter queue: a failed result (success false) under {result_key('<id>')}, kept keep_result"
    )

    def message_locations(self, settings: Settings) -> list[str]:  # noqa: ARG002 (FaultModel's signature)
        return [QUEUE_NAME, job_key("<id>"), in_progress_key("<id>"), result_key("<id>")]

    def holdings(self, settings: Settings, ids: set[str]) -> Holdings:
        """Queued: due in the queue; held: in the queue with a live in-progress key; scheduled: due later."""
        with inspection_client(settings) as client:
            # arq's own clock reading (rounded to the millisecond, as the enqueue scored the job): a plain
            # time.time() could read a job enqueued this very millisecond as due in the future.
            now_ms = timestamp_ms()
            # (member, score) pairs: redis-py types the reply for every option at once.
            pairs = cast(list[tuple[bytes, float]], client.zrange(QUEUE_NAME, 0, -1, withscores=True))
            waiting = {reply_bytes(member).decode(): score for member, score in pairs}
            ours = sorted(ids & waiting.keys())
            others = sorted(ids - waiting.keys())
            with client.pipeline(transaction=False) as pipe:
                for job_id in ours:
                    pipe.exists(in_progress_key(job_id))
                for job_id in others:
                    pipe.get(result_key(job_id))
                replies = pipe.execute()
        started = [bool(r) for r in replies[: len(ours)]]
        queued = held = scheduled = 0
        for job_id, in_progress in zip(ours, started, strict=True):
            if in_progress:
                held += 1
            elif waiting[job_id] > now_ms:
                scheduled += 1
            else:
                queued += 1
        failed = sum(_failed(raw) for raw in replies[len(ours) :])
        return Holdings(queued=queued, held=held, scheduled=scheduled, failed=failed)

    def visibility_timeout_s(self, described: Mapping[str, Any]) -> float | None:  # noqa: ARG002 (FaultModel's signature)
        return None  # a deferred job waits in the queue unstarted; only a started job has an in-progress key

    def inject_malformed(self, settings: Settings) -> str:
        """A job key whose bytes no deserializer can read, its id added to the queue as enqueue_job does."""
        marker = f"poison-{uuid.uuid4().hex}"
        with inspection_client(settings) as client:
            with client.pipeline(transaction=True) as pipe:
                pipe.psetex(job_key(marker), expires_extra_ms, f"{{not json {marker}")
                pipe.zadd(QUEUE_NAME, {marker: timestamp_ms()})
                pipe.execute()
        return marker

    def malformed_whereabouts(self, settings: Settings, marker: str) -> str:
        with inspection_client(settings) as client:
            if client.zscore(QUEUE_NAME, marker) is not None:
                held = client.exists(in_progress_key(marker))
                return f"still in the queue {QUEUE_NAME}" + (", marked in progress" if held else "")
            if _failed(client.get(result_key(marker))):
                return f"out of the queue, a failed result under {result_key(marker)} (kept keep_result)"
        return "gone"

    def redelivery_bound_s(self, described: Mapping[str, Any]) -> float | None:
        # arq/worker.py: the in-progress key set when a job starts lives job_timeout + 10 s; the first poll
        # after it expired (polls are poll_delay apart) starts the job again.
        return float(described["in_progress_timeout_s"]) + float(described["poll_delay_s"])

    def mechanism(self, fault: FaultName, described: Mapping[str, Any], result: FaultOutcome) -> str:
        d, r = described, result
        in_progress, poll = d.get("in_progress_timeout_s"), d.get("poll_delay_s")
        wait, keep = d.get("job_completion_wait_s", 0), d.get("keep_result_s")
        retry, tries = d.get("retry", "none"), d.get("max_tries")
        if fault == "api-deploy":
            return api_restart(result, BROKER_TITLES.get(str(described.get("broker_name", "redis")), "Redis"))
        if fault == "slow-link":
            return slow(result)
        if fault == "partition":
            if r.cut_off == "api":
                return cut(r)
            what = f"the {in_progress:g} s in-progress key after which a polling worker starts a job again"
            return f"{outlasted(r, self.redelivery_bound_s(d), what)}; {cut(r)}"
        if fault == "kill-worker" or (fault == "deploy" and r.killed):
            came_back = (
                f", which did not happen within the {r.watched_s:.0f} s watched"
                if r.lost and r.watched_s is not None
                else ""
            )
            return (
                "arq keeps a started job in its queue with an in-progress key that lives job_timeout + 10 s "
                f"({in_progress:g} s); the killed worker never deleted it, so a worker polling every {poll:g} s "
                f"started the job again as its next try (max_tries {tries}) once the key expired" + came_back
            )
        if fault == "deploy":
            if wait:
                return (
                    f"on SIGTERM arq stops taking jobs and gives running ones job_completion_wait ({wait:g} s) "
                    "to finish, then cancels the rest and puts them back on the queue"
                ) + _stranded(r, in_progress)
            return (
                "on SIGTERM arq cancels running jobs at once and puts them back on the queue for another "
                "worker; a task already running on a thread cannot be cancelled and finishes too"
            ) + _stranded(r, in_progress)
        if fault == "broker-restart":
            return (
                "Redis's AOF kept the queue; an arq worker exits on a failed Redis call and fbt-worker-arq "
                "started it again with backoff; " + outage(r, retry if retry != "none" else "nothing")
            ) + _stranded(r, in_progress)
        if fault == "broker-crash":
            return (
                crash(r) + "; fbt-worker-arq restarted the arq workers, which exit when Redis fails"
            ) + _stranded(r, in_progress)
        if fault == "broker-full":
            return (
                "arq enqueues in one MULTI/EXEC (the job key and its queue entry), which a full Redis refuses "
                f"whole, so a refused job was never stored; {full(r)}; " + outage(r, "arq's next try")
            )
        if fault == "delay-past-timeout":
            return (
                "arq keeps a deferred job in the queue scored by its due time; no worker starts it earlier and "
                f"no timeout hands it out twice: {executions(r)}"
            )
        if fault == "poison-message":
            return (
                "arq fails a job it cannot deserialize like any failing job: out of the queue, a failed result "
                f"kept {keep:g} s; " + malformed(r)
            )
        if retry != "none":
            return (
                f"our job functions raised arq's Retry for each refusal ({retry}), up to max_tries {tries}; "
                f"a job that exhausts them fails, its failed result kept {keep:g} s (arq has no dead-letter queue)"
            )
        return (
            "arq retries no job that raises an ordinary exception: the first refusal failed each job, its failed "
            f"result kept {keep:g} s"
        )


FAULTS = ArqFaults()
