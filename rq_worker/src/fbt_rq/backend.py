"""RQ (Redis Queue) behind the common API: jobs are enqueued to Redis and run by ``rq worker`` processes.

Enqueueing is atomic. RQ 3.0's ``Queue.enqueue_call`` writes the job hash (function, JSON arguments, status)
and pushes the job id onto the queue list in one redis-py transactional pipeline, i.e. one MULTI/EXEC
(rq/queue.py ``_enqueue_async_job``). Redis runs the block all or nothing and discards a MULTI whose EXEC
never arrived, so a broker that dies mid-enqueue leaves no half-written job. (Just before, RQ adds the queue
name to its ``rq:queues`` set in a separate, idempotent write that carries no job.) The one ambiguity no
queue avoids: if EXEC reached Redis but the reply was lost, the API answers 503 for a job that will run.
"""

from datetime import timedelta
from typing import Any

import redis
import rq
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from fbt_rq.jobs import JOB_FUNCTIONS, RETRY_MAX_META
from fbt_rq.queue import make_queue
from fbt_rq.queue_configs import (
    FAILURE_TTL_S,
    QUEUE_NAME,
    RESULT_TTL_S,
    SERIALIZER,
    WORKER_CLASSES,
    dequeue_timeout,
    job_monitoring_interval,
    job_timeout_s,
    maintenance_interval,
    queue_config_for,
    retry,
    worker_ttl,
)
from fbt_rq.settings import get_rq_settings
from fbt_tasks.backend import BrokerUnavailable
from fbt_tasks.enqueue_cost import LIBRARY_ENQUEUE
from fbt_tasks.jobs import Job, JobState
from fbt_tasks.redis_client import answers, connect
from fbt_tasks.settings import Settings

# RQ's states folded into the API's four. RQ cannot tell some apart:
# - a job whose worker was SIGKILLed stays "started" until its heartbeat deadline expires and maintenance
#   re-enqueues it (or fails it), so "started" can mean "running" or "orphaned, not yet noticed";
# - "scheduled" is a job waiting out a retry backoff, shown as queued (it will run again);
# - a job whose result TTL ran out is gone: Job.fetch cannot tell it from one that never existed (404).
STATES: dict[JobStatus, JobState] = {
    JobStatus.CREATED: JobState.queued,
    JobStatus.QUEUED: JobState.queued,
    JobStatus.DEFERRED: JobState.queued,
    JobStatus.SCHEDULED: JobState.queued,
    JobStatus.RATE_LIMITED: JobState.queued,
    JobStatus.READY_TO_ENQUEUE: JobState.queued,
    JobStatus.STARTED: JobState.started,
    JobStatus.FINISHED: JobState.succeeded,
    JobStatus.FAILED: JobState.failed,
    JobStatus.STOPPED: JobState.failed,
    JobStatus.CANCELED: JobState.failed,
}


class RQBackend:
    name = "rq"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._queue_config = queue_config_for(settings)
        self._job_timeout_s = job_timeout_s(settings)
        self._connection = connect(settings)
        self._queue = make_queue(self._connection)

    def enqueue(self, job: Job, delay_s: float = 0.0) -> None:
        job_retry = retry(self._queue_config)
        options: dict[str, Any] = {
            # Our id is RQ's job id, so /jobs/{id} is a plain Job.fetch.
            "job_id": job.id,
            # A fixed description: RQ's default embeds the arguments (email addresses) in logs and Redis.
            "description": f"fbt.{job.kind} {job.id}",
            "result_ttl": RESULT_TTL_S,
            "failure_ttl": FAILURE_TTL_S,
            "retry": job_retry,
            "meta": {RETRY_MAX_META: job_retry.max} if job_retry else None,
        }
        message = job.to_message()
        try:
            if delay_s > 0:
                # RQ's documented delay: the job waits in the ScheduledJobRegistry until a worker started
                # --with-scheduler moves it to the queue.
                with LIBRARY_ENQUEUE.timed():
                    self._queue.enqueue_in(
                        timedelta(seconds=delay_s),
                        JOB_FUNCTIONS[job.kind],
                        message,
                        job_timeout=self._job_timeout_s,
                        **options,
                    )
            else:
                with LIBRARY_ENQUEUE.timed():
                    self._queue.enqueue_call(
                        JOB_FUNCTIONS[job.kind], args=(message,), timeout=self._job_timeout_s, **options
                    )
        except RedisError as exc:
            raise BrokerUnavailable(f"Redis did not take the job: {exc}") from exc

    def status(self, job_id: str) -> JobState | None:
        try:
            found = RQJob.fetch(job_id, connection=self._connection, serializer=JSONSerializer)
        except NoSuchJobError:
            return None
        except RedisError as exc:
            raise BrokerUnavailable(f"Redis did not answer: {exc}") from exc
        state = found.get_status(refresh=False)
        return STATES.get(state) if state is not None else None

    def ping(self) -> bool:
        return answers(self._connection)

    def describe(self) -> dict[str, Any]:
        config, fork = self._queue_config, get_rq_settings().worker_mode == "fork"
        job_retry = retry(config)
        return {
            "runner": "RQ",
            "library_version": rq.__version__,
            "redis_py_version": redis.__version__,
            "serializer": SERIALIZER,
            "queue": QUEUE_NAME,
            "queue_config": config.name,
            "retry": repr(job_retry) if job_retry is not None and job_retry.max else "none",
            "worker_ttl_s": worker_ttl(config),
            "idle_dequeue_block_s": dequeue_timeout(config),
            "job_monitoring_interval_s": job_monitoring_interval(config),
            "maintenance_interval_s": maintenance_interval(config),
            "with_scheduler": bool(config.value("with_scheduler", False)),
            "job_timeout_s": self._job_timeout_s,
            "result_ttl_s": RESULT_TTL_S,
            "failure_ttl_s": FAILURE_TTL_S,
            "worker_class": WORKER_CLASSES[get_rq_settings().worker_mode],
            "concurrency_model": f"{self._settings.slots} `rq worker` processes, one job at a time each"
            + (", a forked work-horse per job" if fork else ", in the worker process"),
            "slots": self._settings.slots,
            "enqueue": "one MULTI/EXEC transaction (job hash + queue push)",
            # Why a fork-per-job worker costs more per job here than RQ's own worker (the drain's fidelity).
            "project_cost": "each job forks the worker, and the project's worker holds its task code, pydantic "
            "and Pillow (loaded before the fork so no job imports them): a larger process than a bare RQ "
            "worker, which every fork and every work-horse's exit pay for; and each job carries more fields "
            "(a fixed description, result and failure TTLs, the retry limit in its meta), written and read "
            "once more per job"
            if fork
            else "none known: jobs run in the worker process",
            "redis_socket_timeout_s": self._settings.redis_socket_timeout_s,
        }

    def close(self) -> None:
        self._connection.close()
