"""SAQ behind the common API: jobs are written to Redis in SAQ's own format and run by ``saq`` workers.

Enqueue is sync, SAQ's client is asyncio-only. The API's routes are sync (anyio's threadpool), so there are
two honest ways in: run SAQ's own ``Queue.enqueue`` on a private event loop thread and wait for it, or run
SAQ's own enqueue script through redis-py's sync client with the job JSON SAQ itself serializes
(``fbt_saq.wire``). The second is used: it spends no thread hop and no second event loop per request (a
rough CPU-per-enqueue comparison of the two favoured it clearly), and it is one EVALSHA round trip that Redis
runs all or nothing, like ``RedisQueue._enqueue``; the job JSON is SAQ's own ``Job.to_dict``.
"""

import json
import math
import time
from typing import Any

import redis
import saq
from redis.exceptions import RedisError
from saq import Job as SaqJob
from saq.job import Status
from saq.utils import now

from fbt_saq.queue_configs import (
    TRANSIENT_ONLY_META,
    job_fields,
    queue_config_for,
    worker_options,
)
from fbt_saq.tasks import function_name
from fbt_saq.wire import ACTIVE_KEY, ENQUEUE_LUA, INCOMPLETE_KEY, QUEUE, QUEUE_NAME, QUEUED_KEY, job_id
from fbt_tasks.backend import BrokerUnavailable
from fbt_tasks.enqueue_cost import LIBRARY_ENQUEUE
from fbt_tasks.jobs import Job, JobState
from fbt_tasks.redis_client import answers, connect
from fbt_tasks.settings import Settings

# SAQ's statuses folded into the API's four. "aborting" is a job the sweep is taking back (it will be
# retried or aborted), so it still counts as started; "aborted" (swept without attempts left) is a failure.
STATES: dict[str, JobState] = {
    Status.NEW.value: JobState.queued,
    Status.QUEUED.value: JobState.queued,
    Status.ACTIVE.value: JobState.started,
    Status.ABORTING.value: JobState.started,
    Status.COMPLETE.value: JobState.succeeded,
    Status.FAILED.value: JobState.failed,
    Status.ABORTED.value: JobState.failed,
}


class SAQBackend:
    name = "saq"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._config = queue_config_for(settings)
        self._fields = job_fields(settings)
        self._meta = {TRANSIENT_ONLY_META: True} if self._config.value("transient_only") else {}
        self._connection = connect(settings)
        self._enqueue_script = self._connection.register_script(ENQUEUE_LUA)

    def enqueue(self, job: Job, delay_s: float = 0.0) -> None:
        message = job.to_message()
        try:
            with LIBRARY_ENQUEUE.timed():
                taken = self._saq_enqueue(job.id, function_name(job.kind), message, delay_s)
        except RedisError as exc:
            raise BrokerUnavailable(f"Redis did not take the job: {exc}") from exc
        if not taken:  # SAQ refuses a key that is still unfinished: never expected for a fresh uuid4
            raise ValueError(f"SAQ already holds an unfinished job {job.id}")

    def _saq_enqueue(self, key: str, function: str, message: dict[str, Any], delay_s: float) -> bool:
        """What SAQ's Queue.enqueue does, as one library call: the Job, its serialization, the script."""
        saq_job = SaqJob(
            function=function,
            kwargs={"message": message},
            queue=QUEUE,
            # Our id is SAQ's job key, so /jobs/{id} reads saq:job:fbt:<id>.
            key=key,
            # SAQ's documented delay: a job scheduled in the future waits in `incomplete` until a worker's
            # schedule pass (every second) queues it; whole epoch seconds, rounded up so it never runs early.
            scheduled=math.ceil(time.time() + delay_s) if delay_s > 0 else 0,
            meta=dict(self._meta),
            **self._fields,
        )
        # What Queue.enqueue does before its script runs.
        saq_job.queued, saq_job.status = now(), Status.QUEUED
        return bool(
            self._enqueue_script(
                keys=[INCOMPLETE_KEY, saq_job.id, QUEUED_KEY, saq_job.abort_id],
                args=[QUEUE.serialize(saq_job), saq_job.scheduled],
            )
        )

    def status(self, job_id_: str) -> JobState | None:
        try:
            raw = self._connection.get(job_id(job_id_))
        except RedisError as exc:
            raise BrokerUnavailable(f"Redis did not answer: {exc}") from exc
        if raw is None:  # never enqueued, or finished longer than Job.ttl ago
            return None
        try:
            status = json.loads(raw).get("status", Status.NEW.value)
        except (ValueError, AttributeError):
            return None  # not a job SAQ could read either
        return STATES.get(status)

    def ping(self) -> bool:
        return answers(self._connection)

    def describe(self) -> dict[str, Any]:
        fields, worker = self._fields, worker_options(self._settings)
        return {
            "runner": "SAQ",
            "library_version": saq.__version__,
            "redis_py_version": redis.__version__,
            "serializer": "json (SAQ's default json.dumps/json.loads)",
            "queue": QUEUE_NAME,
            "queue_config": self._config.name,
            "job_timeout_s": fields["timeout"],
            "heartbeat_s": fields["heartbeat"],
            "retries": fields["retries"],
            "retry_delay_s": fields["retry_delay"],
            "transient_only": bool(self._meta),
            "ttl_s": fields["ttl"],
            "sweep_interval_s": worker["timers.sweep"],
            "schedule_interval_s": worker["timers.schedule"],
            "worker_info_interval_s": worker["timers.worker_info"],
            "dequeue_timeout_s": worker["dequeue_timeout"],
            "shutdown_grace_period_s": worker["shutdown_grace_period_s"],
            "concurrency_model": (
                f"{self._settings.worker_processes} `saq` worker processes x {self._settings.worker_threads} "
                "concurrent jobs each (Worker concurrency), on one asyncio event loop per process"
            ),
            "slots": self._settings.slots,
            "enqueue": "SAQ's enqueue Lua script via redis-py's sync client (job JSON + queue push, atomic)",
            "keys": [QUEUED_KEY, ACTIVE_KEY, INCOMPLETE_KEY],
            "redis_socket_timeout_s": self._settings.redis_socket_timeout_s,
            "sweep_race": (
                "SAQ's sweep also takes a job dequeued but not yet marked active, and retries it after it "
                "finished when attempts are left: it runs twice (tobymao/saq#277; fbt_saq.queue_configs)"
            ),
        }

    def close(self) -> None:
        self._connection.close()
