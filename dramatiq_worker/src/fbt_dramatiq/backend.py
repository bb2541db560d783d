"""Dramatiq on Redis or RabbitMQ: the API enqueues a message, ``fbt-worker-dramatiq`` processes run the actors.

Messages are acked late, so a killed worker's jobs are requeued once its heartbeat expires on Redis, or as
soon as its connection closes on RabbitMQ (see ``queue_configs``). Job states come from Dramatiq's Results
middleware plus a "started" mark (see ``middleware``), both in Redis whichever broker carries the messages,
where the queue config keeps them (the safe one does); without them every id reads "queued".
"""

from typing import Any, TypeVar

import dramatiq
import pika
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.errors import BrokerConnectionError
from dramatiq.middleware import Retries, TimeLimit
from dramatiq.results import ResultBackend, ResultFailure, Results
from dramatiq.worker import QUEUE_PREFETCH

from fbt_dramatiq.actors import QUEUE_NAME, actor_name
from fbt_dramatiq.broker import build_broker, redis_client
from fbt_dramatiq.middleware import started_key
from fbt_dramatiq.queue_configs import ACTOR, MARK_STARTED, RABBITMQ_BROKER, queue_config_for
from fbt_tasks.backend import BrokerUnavailable
from fbt_tasks.enqueue_cost import LIBRARY_ENQUEUE
from fbt_tasks.jobs import TASKS, Job, JobState
from fbt_tasks.settings import Settings

M = TypeVar("M", bound=dramatiq.Middleware)


class DramatiqBackend:
    name = "dramatiq"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._queue_config = queue_config_for(settings)
        # One fail-fast client for the Redis broker's calls, the results, the started marks and ping().
        self._client = redis_client(settings)
        self._broker = build_broker(settings, client=self._client)
        # None where the queue config keeps no results (Dramatiq's defaults): status() has nothing to read.
        self._results: ResultBackend | None = next(
            (m.backend for m in self._broker.middleware if isinstance(m, Results)), None
        )
        self._marks_started = bool(self._queue_config.options(MARK_STARTED))
        self._actor_names = {kind: actor_name(kind) for kind in TASKS}

    def enqueue(self, job: Job, delay_s: float = 0.0) -> None:
        # The message actor.message() would build, built once: the job id becomes Dramatiq's message id (so
        # /jobs/{id}, the ledger and Redis name the same thing) without a throwaway uuid4 and a copy (~6 us).
        args = (job.to_message(),)
        try:
            # Atomic: the broker sends one EVALSHA of dispatch.lua, whose HSET (body) and RPUSH (id) Redis
            # runs as a single script, so a job is either fully queued or absent. The one ambiguity is a reply
            # lost after Redis ran it: the job is queued yet we answer 503. We never replay it (no retries),
            # so this call cannot enqueue a job twice.
            # On RabbitMQ it is one basic.publish (confirmed in the safe config); Dramatiq itself retries a
            # publish on a fresh connection after a connection error, so a lost confirm can queue a job twice.
            # delay: Dramatiq puts the message on the queue's delay queue (".DQ") with an eta.
            with LIBRARY_ENQUEUE.timed():  # what actor.send_with_options does: the message, then the broker
                message: dramatiq.Message[Any] = dramatiq.Message(
                    queue_name=QUEUE_NAME,
                    actor_name=self._actor_names[job.kind],
                    args=args,
                    kwargs={},
                    options={},
                    message_id=job.id,
                    message_timestamp=int(job.enqueued_at * 1000),
                )
                self._broker.enqueue(message, delay=round(delay_s * 1000) or None)
        except (redis.RedisError, BrokerConnectionError) as exc:
            where = "Redis" if isinstance(exc, redis.RedisError) else "RabbitMQ"
            raise BrokerUnavailable(
                f"{where} did not take the message ({type(exc).__name__}: {exc})"
            ) from exc

    def status(self, job_id: str) -> JobState | None:
        results = self._results
        # Results keys are derived from queue, actor and message id, and only the id is known: probe every
        # actor's key and the "started" mark in one round trip.
        keys = (
            []
            if results is None
            else [results.build_message_key(_probe(n, job_id)) for n in self._actor_names.values()]
        )
        try:
            with self._client.pipeline(transaction=False) as pipe:
                # Without job states there is nothing to read, but a Redis that is down still answers 503.
                if self._marks_started:
                    pipe.exists(started_key(job_id))
                else:
                    pipe.ping()
                for key in keys:
                    pipe.lindex(key, 0)
                started, *stored = pipe.execute()
        except redis.RedisError as exc:
            raise BrokerUnavailable(f"Redis did not answer ({type(exc).__name__}: {exc})") from exc
        for data in stored:
            if data is not None and results is not None:
                try:
                    results.unwrap_result(results.encoder.decode(data))
                except ResultFailure:
                    return JobState.failed
                return JobState.succeeded
        # "started" covers a job waiting between retries and one requeued after its worker died, too.
        if self._marks_started and started:
            return JobState.started
        # Dramatiq keeps no record of a message until a worker takes it (and enqueue stays one Lua call), so
        # it cannot tell a queued job from an id it never saw: both read "queued", like Celery's PENDING. With
        # no job states kept (Dramatiq's defaults) every id reads "queued", a finished job's too.
        return JobState.queued

    def ping(self) -> bool:
        try:
            redis_up = bool(self._client.ping())
        except redis.RedisError:
            return False
        if isinstance(self._broker, RedisBroker):
            return redis_up
        # Beside RabbitMQ, Redis keeps the results and the send-once guard: both must answer.
        from fbt_dramatiq.health import rabbitmq_consumers

        return rabbitmq_consumers(self._settings) is not None

    def describe(self) -> dict[str, Any]:
        retries = _middleware(self._broker, Retries)
        time_limit = _middleware(self._broker, TimeLimit)
        options = self._queue_config.options(ACTOR)
        threads = self._settings.worker_threads
        return {
            "runner": "Dramatiq",
            "library_version": dramatiq.__version__,
            "broker_name": self._settings.broker_name,
            "broker": self._broker_text(),
            "result_backend": (
                "Redis (Results middleware)" if self._results is not None else "none (Dramatiq's default)"
            ),
            "serializer": "JSON (dramatiq.JSONEncoder: Dramatiq's default, also set explicitly; no pickle)",
            "queue_config": self._queue_config.name,
            "reliability": {
                **self._acks(),
                "max_retries": options.get("max_retries", retries.max_retries),
                "min_backoff_ms": options.get("min_backoff", retries.min_backoff),
                "max_backoff_ms": options.get("max_backoff", retries.max_backoff),
                "time_limit_ms": options.get("time_limit", time_limit.time_limit),
            },
            "concurrency_model": (
                f"dramatiq CLI: {self._settings.worker_processes} processes x {threads} threads, "
                f"each process prefetching up to {QUEUE_PREFETCH or threads * 2} messages"
            ),
            "slots": self._settings.slots,
            "job_status": self._job_status_text(),
        }

    def _job_status_text(self) -> str:
        if self._results is None:
            return "none kept (Dramatiq's default): every id reads queued, finished ones too"
        started = " + a started mark" if self._marks_started else " (no started mark)"
        return f"Results middleware (succeeded/failed){started}; unknown ids read queued"

    def _broker_text(self) -> str:
        if isinstance(self._broker, RedisBroker):
            return f"RedisBroker, redis-py {redis.__version__}"
        return f"RabbitmqBroker, pika {pika.__version__}; results in Redis"

    def _acks(self) -> dict[str, Any]:
        if isinstance(self._broker, RedisBroker):
            return {
                "acks": "late: a message leaves Redis only after its actor finished",
                "heartbeat_timeout_ms": self._broker.heartbeat_timeout,
                "maintenance_chance_per_million": self._broker.maintenance_chance,
            }
        return {
            "acks": "late: RabbitMQ requeues a consumer's unacked messages when its connection closes",
            "confirm_delivery": bool(self._queue_config.options(RABBITMQ_BROKER).get("confirm_delivery")),
            "durable_queues": True,
            "delivery_mode": 2,
        }

    def close(self) -> None:
        self._client.close()
        if not isinstance(self._broker, RedisBroker):
            self._broker.close()


def _probe(name: str, job_id: str) -> dramatiq.Message[Any]:
    """A message with just the fields the results key is derived from."""
    return dramatiq.Message(
        queue_name=QUEUE_NAME, actor_name=name, args=(), kwargs={}, options={}, message_id=job_id
    )


def _middleware(broker: dramatiq.Broker, kind: type[M]) -> M:
    return next(m for m in broker.middleware if isinstance(m, kind))
