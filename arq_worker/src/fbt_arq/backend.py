"""arq behind the common API: jobs are written to Redis in arq's format and run by ``arq`` worker processes.

Enqueueing replays ``ArqRedis.enqueue_job`` (arq/connections.py) with redis-py's sync client, command for
command: WATCH the job key, refuse an id whose job or result key exists, then one MULTI/EXEC that writes the
job (PSETEX, expiring a day after it is due) and adds its id to the queue's sorted set (ZADD, scored by the
time it may run). The job bytes come from arq's own ``serialize_job`` with our JSON serializer. Redis runs the
MULTI/EXEC all or nothing, so a broker that dies mid-enqueue leaves no half-written job; if EXEC reached
Redis but the reply was lost, the API answers 503 for a job that will run (no queue avoids that).

Why not arq's client: it is asyncio-only and the routes calling ``enqueue`` are sync, so it would need an event
loop thread of its own and a hop to it per enqueue, for the same three round trips (see describe()).
"""

from typing import Any

import arq
import redis
from arq.constants import expires_extra_ms
from arq.jobs import deserialize_result, serialize_job
from arq.utils import timestamp_ms, to_ms
from redis.exceptions import RedisError, WatchError

from fbt_arq.jobs import function_name
from fbt_arq.queue_configs import (
    ARQ_DEFAULTS,
    in_progress_timeout_s,
    job_timeout_s,
    max_tries,
    queue_config_for,
    retry_defers_s,
    worker_option,
)
from fbt_arq.wire import QUEUE_NAME, dumps, in_progress_key, job_key, loads, result_key
from fbt_arq.worker_settings import health_check_interval_s
from fbt_tasks.backend import BrokerUnavailable
from fbt_tasks.enqueue_cost import LIBRARY_ENQUEUE
from fbt_tasks.jobs import Job, JobState
from fbt_tasks.redis_client import answers, connect
from fbt_tasks.settings import Settings

# arq's README and PyPI page: "arq is in maintenance only mode" (python-arq/arq#510).
MAINTENANCE = "arq is in maintenance-only mode upstream (its README; python-arq/arq#510)"


class DuplicateJobId(ValueError):
    """arq refuses an id that already has a job or a result; ours are fresh uuid4s, so this is a bug."""


class ArqBackend:
    name = "arq"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._queue_config = queue_config_for(settings)
        self._client = connect(settings)

    def enqueue(self, job: Job, delay_s: float = 0.0) -> None:
        key, message = job_key(job.id), job.to_message()
        try:
            # arq's enqueue_job, step for step, as one library call.
            with LIBRARY_ENQUEUE.timed(), self._client.pipeline(transaction=True) as pipe:
                pipe.watch(key)
                if pipe.exists(key, result_key(job.id)):
                    raise DuplicateJobId(f"arq already has a job or result with id {job.id}")
                enqueued_ms = timestamp_ms()
                # arq's _defer_by: the job waits in the same sorted set, scored by when it may run.
                score = enqueued_ms + (to_ms(delay_s) if delay_s > 0 else 0)
                data = serialize_job(
                    function_name(job.kind), (message,), {}, None, enqueued_ms, serializer=dumps
                )
                pipe.multi()
                pipe.psetex(key, score - enqueued_ms + expires_extra_ms, data)
                pipe.zadd(QUEUE_NAME, {job.id: score})
                pipe.execute()
        except WatchError as exc:
            raise DuplicateJobId(f"a job with id {job.id} was enqueued meanwhile") from exc
        except RedisError as exc:
            raise BrokerUnavailable(f"Redis did not take the job: {exc}") from exc

    def status(self, job_id: str) -> JobState | None:
        # arq's Job.status reads the same three keys in one transaction; the result also says failed or not.
        try:
            with self._client.pipeline(transaction=True) as pipe:
                pipe.get(result_key(job_id))
                pipe.exists(in_progress_key(job_id))
                pipe.zscore(QUEUE_NAME, job_id)
                result, in_progress, score = pipe.execute()
        except RedisError as exc:
            raise BrokerUnavailable(f"Redis did not answer: {exc}") from exc
        if result is not None:
            return (
                JobState.succeeded
                if deserialize_result(result, deserializer=loads).success
                else JobState.failed
            )
        if in_progress:
            # Running, or its worker was killed and the key has not expired yet: arq cannot tell.
            return JobState.started
        if score is not None:
            # Due, deferred (a delay) or waiting out a Retry's defer: it will run.
            return JobState.queued
        return None

    def ping(self) -> bool:
        return answers(self._client)

    def describe(self) -> dict[str, Any]:
        config, settings = self._queue_config, self._settings
        defers = retry_defers_s(config)
        return {
            "runner": "arq",
            "library_version": arq.VERSION,
            "redis_py_version": redis.__version__,
            "maintenance": MAINTENANCE,
            "serializer": "JSON (fbt_arq.wire.dumps/loads as job_serializer/job_deserializer)",
            "queue": QUEUE_NAME,
            "queue_config": config.name,
            "max_tries": max_tries(config),
            "retry": f"Retry on {', '.join(config.retries_on)} after {defers} s" if defers else "none",
            "job_timeout_s": job_timeout_s(config, settings),
            "in_progress_timeout_s": in_progress_timeout_s(config, settings),
            "poll_delay_s": float(ARQ_DEFAULTS["poll_delay"]),
            # arq/worker.py main and start_jobs: a poll starts jobs until max_jobs are running, then returns,
            # and the next poll comes poll_delay after this one began, however soon a slot frees.
            "polling": (
                f"each worker polls every {float(ARQ_DEFAULTS['poll_delay']):g} s (poll_delay, kept at arq's "
                "default) and a poll stops starting jobs once max_jobs run: a job that arrives between polls waits "
                "for the next one, and jobs that outlast a poll start at most max_jobs per poll_delay per process"
            ),
            "keep_result_s": float(ARQ_DEFAULTS["keep_result"]),
            "job_completion_wait_s": float(worker_option(config, "job_completion_wait")),
            "health_check_interval_s": health_check_interval_s(settings),
            "allow_abort_jobs": bool(ARQ_DEFAULTS["allow_abort_jobs"]),
            "max_jobs": settings.worker_threads,
            "concurrency_model": (
                f"{settings.worker_processes} `arq` worker processes x max_jobs {settings.worker_threads} "
                "asyncio tasks each"
            ),
            "slots": settings.slots,
            "enqueue": (
                "arq's enqueue_job replayed with sync redis-py: WATCH, EXISTS, MULTI/EXEC (PSETEX + ZADD); "
                "3 round trips"
            ),
            "redis_socket_timeout_s": settings.redis_socket_timeout_s,
        }

    def close(self) -> None:
        self._client.close()
