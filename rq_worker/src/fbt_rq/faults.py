"""What the RQ runner knows about its own behaviour under faults (``fbt_tasks.runner.FaultModel``).

Read by the fault harness: RQ's Redis keys for our queue, when maintenance puts a killed worker's job
back, and one sentence per fault on why RQ, configured as ``describe()`` recorded, behaved so.
"""

import time
import uuid
from collections.abc import Mapping
from typing import Any

from rq import Queue
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from fbt_rq.queue_configs import QUEUE_NAME
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
from fbt_tasks.holdings import count_ids, inspection_client
from fbt_tasks.runner import BROKER_TITLES, FaultName, FaultOutcome, Holdings
from fbt_tasks.settings import Settings

# rq/registry.py key templates and rq/queue.py's keys for our queue. A dequeued job sits in the intermediate
# list until its worker registers it as started; started entries are "<job id>:<execution id>".
QUEUE_KEY = f"{Queue.redis_queue_namespace_prefix}{QUEUE_NAME}"
INTERMEDIATE_KEY = IntermediateQueue.get_intermediate_queue_key(QUEUE_KEY)
STARTED_KEY = StartedJobRegistry.key_template.format(QUEUE_NAME)
SCHEDULED_KEY = ScheduledJobRegistry.key_template.format(QUEUE_NAME)
FAILED_KEY = FailedJobRegistry.key_template.format(QUEUE_NAME)


def _started_job_id(member: bytes) -> str:
    return member.decode().split(":", 1)[0]


class RQFaults:
    exhausted_to = f"FailedJobRegistry ({FAILED_KEY})"

    def message_locations(self, settings: Settings) -> list[str]:  # noqa: ARG002 (FaultModel's signature)
        return [QUEUE_KEY, INTERMEDIATE_KEY, STARTED_KEY, SCHEDULED_KEY, FAILED_KEY]

    def holdings(self, settings: Settings, ids: set[str]) -> Holdings:
        with inspection_client(settings) as client:
            started = count_ids(client.zrange(STARTED_KEY, 0, -1), ids, _started_job_id)
            return Holdings(
                queued=count_ids(client.lrange(QUEUE_KEY, 0, -1), ids),
                held=started + count_ids(client.lrange(INTERMEDIATE_KEY, 0, -1), ids),
                scheduled=count_ids(client.zrange(SCHEDULED_KEY, 0, -1), ids),
                failed=count_ids(client.zrange(FAILED_KEY, 0, -1), ids),
            )

    def visibility_timeout_s(self, described: Mapping[str, Any]) -> float | None:  # noqa: ARG002 (FaultModel's signature)
        return None  # a delayed job waits in the ScheduledJobRegistry, apart from delivered ones

    def inject_malformed(self, settings: Settings) -> str:
        """A job hash whose ``data`` no serializer can read, its id pushed onto our queue as RQ enqueues."""
        marker = f"poison-{uuid.uuid4().hex}"
        with inspection_client(settings) as client:
            client.hset(
                f"{Job.redis_job_namespace_prefix}{marker}",
                mapping={
                    "data": f"{{not json {marker}",
                    "origin": QUEUE_NAME,
                    "status": "queued",
                    "description": f"malformed {marker}",
                    "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()),
                    "enqueued_at": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()),
                },
            )
            client.rpush(QUEUE_KEY, marker)
        return marker

    def malformed_whereabouts(self, settings: Settings, marker: str) -> str:
        where = self.holdings(settings, {marker})
        if where["failed"]:
            return f"in the FailedJobRegistry ({FAILED_KEY})"
        for place in ("queued", "held", "scheduled"):
            if where[place]:
                return f"{place} in Redis"
        return "gone: RQ dropped it"

    def redelivery_bound_s(self, described: Mapping[str, Any]) -> float | None:
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

    def mechanism(self, fault: FaultName, described: Mapping[str, Any], result: FaultOutcome) -> str:
        d, r = described, result
        retry = d.get("retry", "none")
        jmi, maint, block = (
            d.get("job_monitoring_interval_s"),
            d.get("maintenance_interval_s"),
            d.get("idle_dequeue_block_s"),
        )
        if fault == "api-deploy":
            return api_restart(result, BROKER_TITLES.get(str(described.get("broker_name", "redis")), "Redis"))
        if fault == "slow-link":
            return slow(result)
        if fault == "partition":
            if r.cut_off == "api":
                return f"RQ's enqueue is one MULTI/EXEC; {cut(r)}"
            what = "the heartbeat deadline after which RQ's cleanup treats a started job as abandoned"
            return (
                "a work horse cut off from Redis can neither heartbeat nor save its result; "
                f"{outlasted(r, self.redelivery_bound_s(d), what)}; {cut(r)}"
            )
        if fault == "kill-worker" or (fault == "deploy" and r.killed):
            timing = (
                f"its heartbeat deadline ({jmi} s + 60 s) has passed and a worker's maintenance runs (every "
                f"{maint} s, but only between dequeues, which block {block} s when idle)"
            )
            if retry != "none":
                return (
                    f"RQ re-enqueues a killed job once {timing}, because the job has Retry left; a job "
                    "dequeued but not yet started waits over a minute in RQ's intermediate queue before the "
                    "same happens"
                )
            return f"without Retry, RQ moves a killed job to the FailedJobRegistry once {timing}: it never re-runs"
        if fault == "deploy":
            return "SIGTERM is RQ's warm shutdown: the worker finishes the job in hand and the rest wait in Redis"
        if fault == "broker-restart":
            return (
                "Redis's AOF kept the queue and the workers retried their connection with backoff; "
                + outage(r, retry if retry != "none" else "nothing")
            )
        if fault == "broker-crash":
            return crash(r) + "; the workers reconnected with backoff"
        if fault == "broker-full":
            bound = self.redelivery_bound_s(d)
            stuck = (
                "; they sat in the StartedJobRegistry or RQ's intermediate queue"
                + (
                    f", past the ~{bound:.0f} s by which RQ puts back a killed worker's job"
                    if bound is not None and (r.watched_s or 0.0) > bound
                    else ""
                )
                if r.held
                else ""
            )
            return (
                "RQ's enqueue is one MULTI/EXEC, which a full Redis refuses whole, so a refused job was never "
                f"stored; {full(r)}{stuck}; {outage(r, retry if retry != 'none' else 'nothing')}"
            )
        if fault == "delay-past-timeout":
            if not d.get("with_scheduler"):
                return (
                    "RQ keeps a delayed job in the ScheduledJobRegistry until a worker started with "
                    f"--with-scheduler moves it to the queue; none was, so {executions(r)}"
                )
            return (
                "RQ keeps a delayed job in the ScheduledJobRegistry, apart from the queue, until the "
                f"scheduler enqueues it when due; no timeout hands it out twice: {executions(r)}"
            )
        if fault == "poison-message":
            return (
                "RQ fails a job it cannot deserialize like any failing job, with the error logged; "
                + malformed(r)
            )
        if retry != "none":
            return (
                f"RQ re-ran each refused job per {retry} (the worker's scheduler waits out the intervals); a "
                f"job that exhausts it goes to the FailedJobRegistry, kept {d.get('failure_ttl_s')} s"
            )
        return "RQ retries nothing by default: the first refusal moved each job to the FailedJobRegistry"


FAULTS = RQFaults()
