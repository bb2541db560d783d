"""taskiq behind the common API: the API writes taskiq's messages to Redis; ``taskiq worker`` runs them.

Enqueueing is one Redis command (XADD or LPUSH, see fbt_taskiq.wire), so a broker that dies mid-enqueue
leaves either the whole message or none; a reply lost after the write reached Redis gives a 503 for a job
that will run, as with every queue.
"""

import json
from importlib.metadata import version
from typing import Any

import redis
import taskiq
from redis.exceptions import RedisError

from fbt_taskiq.broker import build_broker
from fbt_taskiq.queue_configs import (
    CONSUMER_GROUP,
    QUEUE_NAME,
    RESULT_TTL_S,
    broker_class,
    queue_config_for,
    reclaim_interval_s,
    retry_options,
    stream_options,
)
from fbt_taskiq.redis_keys import push, result_key
from fbt_taskiq.wire import encode
from fbt_tasks.backend import BrokerUnavailable, DelayUnsupported
from fbt_tasks.enqueue_cost import LIBRARY_ENQUEUE
from fbt_tasks.jobs import Job, JobState
from fbt_tasks.redis_client import answers, connect
from fbt_tasks.settings import Settings


class TaskiqBackend:
    name = "taskiq"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._config = queue_config_for(settings)
        self._streams = broker_class(self._config) == "RedisStreamBroker"
        # Only its formatter is used here; its redis.asyncio pools never connect in the API.
        self._broker = build_broker(settings)
        self._connection = connect(settings)

    def enqueue(self, job: Job, delay_s: float = 0.0) -> None:
        if delay_s > 0:
            raise DelayUnsupported(
                "taskiq delays a task only through a schedule source and a `taskiq scheduler` process, "
                "which this runner does not run"
            )
        try:
            # taskiq's own message formatting and its XADD (LPUSH without Streams), as kiq() would do them.
            with LIBRARY_ENQUEUE.timed():
                push(self._connection, self._streams, encode(self._broker, job))
        except RedisError as exc:
            raise BrokerUnavailable(f"Redis did not take the job: {exc}") from exc

    def status(self, job_id: str) -> JobState | None:
        """succeeded/failed from the result backend; queued before that (taskiq keeps no running state).

        Like Celery's PENDING, "queued" also answers for an id taskiq never saw: telling them apart would
        mean scanning the whole stream.
        """
        try:
            stored = self._connection.get(result_key(job_id))
        except RedisError as exc:
            raise BrokerUnavailable(f"Redis did not answer: {exc}") from exc
        if stored is None:
            return JobState.queued
        return JobState.failed if json.loads(stored).get("is_err") else JobState.succeeded

    def ping(self) -> bool:
        return answers(self._connection)

    def describe(self) -> dict[str, Any]:
        config, settings = self._config, self._settings
        stream = stream_options(config, settings) if self._streams else {}
        retries = retry_options(config)
        interval = reclaim_interval_s(config)
        return {
            "runner": "taskiq",
            "library_version": taskiq.__version__,
            "taskiq_redis_version": version("taskiq-redis"),
            "redis_py_version": redis.__version__,
            "broker": f"taskiq_redis.{broker_class(config)}",
            "queue": QUEUE_NAME,
            "consumer_group": CONSUMER_GROUP if self._streams else None,
            "queue_config": config.name,
            "acks": "XACK after the result is saved (when_saved)" if self._streams else "none: BRPOP removes",
            "idle_timeout_ms": stream.get("idle_timeout"),
            "xread_count": stream.get("xread_count"),
            "xread_block_ms": stream.get("xread_block", 2000) if self._streams else None,
            "reclaim": (
                "XAUTOCLAIM by a live worker after a read that returned new messages; on an idle queue, none"
                if self._streams and interval is None
                else f"XAUTOCLAIM by a live worker after each non-empty read, and every {interval:g} s when idle"
                if self._streams
                else "none"
            ),
            "reclaim_interval_s": interval if self._streams else None,
            "retry": (
                f"SimpleRetryMiddleware: {retries['default_retry_count']} attempts, re-sent at once"
                if retries
                else "none"
            ),
            "result_backend": f"taskiq_redis.RedisAsyncResultBackend (JSON, kept {RESULT_TTL_S} s)",
            "serializer": "taskiq.serializers.JSONSerializer",
            "concurrency_model": (
                f"{settings.worker_processes} `taskiq worker` processes x {settings.worker_threads} "
                "concurrent async tasks each"
            ),
            "slots": settings.slots,
            "enqueue": "one XADD" if self._streams else "one LPUSH",
            "redis_socket_timeout_s": settings.redis_socket_timeout_s,
        }

    def close(self) -> None:
        self._connection.close()
