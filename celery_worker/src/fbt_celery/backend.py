"""Celery on Redis or RabbitMQ, as the API sees it: publish a task message, read its state from Redis.

The job id is the Celery task id, so ``/jobs/{id}`` reads Celery's own record of the task, where the queue
config keeps a result backend; without one (``defaults``, as Celery ships) there is no record to read.
"""

from typing import Any

import celery
import kombu
import redis
from celery import states
from celery.backends.redis import RedisBackend
from celery.result import AsyncResult
from kombu.transport.redis import Channel as RedisChannel

from fbt_celery.app import BROKER_ERRORS, create_app
from fbt_celery.queue_configs import TASK, TRANSPORT, queue_config_for
from fbt_celery.tasks import task_name
from fbt_tasks.backend import BrokerUnavailable
from fbt_tasks.enqueue_cost import LIBRARY_ENQUEUE
from fbt_tasks.jobs import Job, JobState
from fbt_tasks.settings import Settings

STATE_OF: dict[str, JobState] = {
    # Celery reports PENDING both for a task waiting in the queue and for an id it has never seen
    # ("any task id that's not known is implied to be in the pending state"), so this backend can never
    # tell an unknown id apart from a queued job: status() never returns None.
    states.PENDING: JobState.queued,
    # RECEIVED only exists as a monitoring event, never in the result backend; listed for completeness.
    states.RECEIVED: JobState.queued,
    # A failed attempt waiting out its retry countdown: queued again until the next attempt starts.
    states.RETRY: JobState.queued,
    states.STARTED: JobState.started,
    states.SUCCESS: JobState.succeeded,
    states.FAILURE: JobState.failed,
    states.REVOKED: JobState.failed,
    states.REJECTED: JobState.failed,
}


class NoSubscribeRedisBackend(RedisBackend):
    """Celery's Redis result backend, minus the SUBSCRIBE to the task's result channel on every apply_async.

    ``send_task`` calls ``backend.on_task_call`` before publishing, and the Redis backend subscribes there
    so that a later ``.get()`` is woken by the worker's PUBLISH (an UNSUBSCRIBE follows when the AsyncResult
    is collected). The API never waits on a result: /jobs reads the stored state with one GET, which this
    class leaves as it is, as it leaves the worker's writes of states and results. Celery has no setting for
    this (celery/celery#3808); ``ignore_result=True`` would skip the subscription too, but it travels in the
    message and the worker would then store no state at all.
    """

    def on_task_call(self, producer: Any, task_id: str) -> None:  # noqa: ARG002 (Celery's on_task_call signature)
        return None  # nothing will ever wait on this result: no channel to subscribe to


# ``<backend class>+<url>``: Celery's own result_backend syntax for naming the class that serves a URL (as
# in "db+postgresql://"; celery.app.backends.by_url), so the API's app alone uses the class above.
NO_SUBSCRIBE_BACKEND = f"{__name__}:{NoSubscribeRedisBackend.__name__}"


class CeleryBackend:
    name = "celery"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._app = create_app(settings)
        results = self._app.conf.result_backend
        # None: Celery's DisabledBackend, which stores nothing and raises on every read.
        self._stores_results = bool(results)
        # Without results, status() PINGs Redis on a redis-py client of its own. Not on the kombu channel's
        # client, as ping() does: that client can hold an unread reply (seen in tests after an enqueue and a
        # worker's run), so its first PING after Redis went away read a stale PONG and succeeded.
        self._status_client = (
            None
            if results
            else redis.Redis.from_url(
                settings.redis_url,
                socket_timeout=settings.redis_socket_timeout_s,
                socket_connect_timeout=settings.redis_socket_timeout_s,
            )
        )
        if results:  # before the app builds its backend (on first use): the API's enqueue never subscribes
            self._app.conf.result_backend = f"{NO_SUBSCRIBE_BACKEND}+{results}"
        broker = self._app.connection_for_write()
        title = "RabbitMQ" if settings.broker_name == "rabbitmq" else "Redis"
        self._broker = f"{title} at {broker.hostname}:{broker.port}"  # for messages: no password

    def enqueue(self, job: Job, delay_s: float = 0.0) -> None:
        # Atomic by construction: kombu's Redis transport publishes a message with one LPUSH of the whole
        # JSON message onto the queue list, and publish retries are off (see app.py), so either that one
        # command took effect or nothing did. (If Redis applied it but its reply timed out, the job still
        # runs despite the 503: the one ambiguity no client can remove.) On RabbitMQ it is one basic.publish,
        # confirmed by the broker before this returns when the queue config turns publisher confirms on.
        task, message = self._app.tasks[task_name(job.kind)], job.to_message()
        try:
            # countdown: Celery's delay, held by a worker as an unacked ETA task until due (see faults.py).
            with LIBRARY_ENQUEUE.timed():
                task.apply_async(args=[message], task_id=job.id, countdown=delay_s or None)
        except BROKER_ERRORS as exc:
            raise BrokerUnavailable(f"{self._broker} did not take the task: {exc}") from exc

    def status(self, job_id: str) -> JobState | None:
        if self._status_client is not None:
            # No result backend (Celery's default): nothing records what a worker did, so Celery can tell
            # nothing of any id, a finished or failed job's included: queued, as PENDING reads. Redis is still
            # asked (the broker, or the send-once guard's server beside RabbitMQ), so that an outage answers
            # 503 here as it does with a result backend.
            try:
                self._status_client.ping()
            except redis.RedisError as exc:
                raise BrokerUnavailable(f"Redis did not answer: {exc}") from exc
            return JobState.queued
        try:
            state = AsyncResult(job_id, app=self._app).state
        except BROKER_ERRORS as exc:
            raise BrokerUnavailable(f"{self._broker} did not answer: {exc}") from exc
        return STATE_OF.get(state, JobState.queued)

    def ping(self) -> bool:
        if self._settings.broker_name == "rabbitmq":
            return self._ping_rabbitmq() and self._ping_results()
        try:
            with self._app.connection_or_acquire() as conn:
                # One PING on a pooled broker connection, bounded by the transport's socket timeouts.
                conn.default_channel.client.ping()
        except BROKER_ERRORS:
            return False
        return True

    def _ping_rabbitmq(self) -> bool:
        # A fresh AMQP login (bounded by broker_connection_timeout): a pooled connection may not yet know
        # that a restarted broker closed it.
        try:
            with self._app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1)
        except BROKER_ERRORS:
            return False
        return True

    def _ping_results(self) -> bool:
        # Beside RabbitMQ, Redis holds the send-once guard and, where the queue config keeps one, the results
        # /jobs reads: it must answer too.
        client = redis.Redis.from_url(
            self._settings.redis_url,
            socket_timeout=self._settings.redis_socket_timeout_s,
            socket_connect_timeout=self._settings.redis_socket_timeout_s,
        )
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def describe(self) -> dict[str, Any]:
        conf = self._app.conf
        retry = queue_config_for(self._settings).options(TASK)
        common = {
            "runner": "Celery",
            "library_version": celery.__version__,
            "kombu_version": kombu.__version__,
            "broker_name": self._settings.broker_name,
            "result_backend": (
                "Redis" if self._stores_results else "none (Celery's default: no job state is stored)"
            ),
            # The API's apply_async does not subscribe to the result channel (NoSubscribeRedisBackend).
            "result_subscribe_on_enqueue": False,
            "track_started": bool(conf.task_track_started),
            "job_status": self._job_status_text(),
            "serializer": conf.task_serializer,
            "accept_content": list(conf.accept_content),
            "queue_config": self._settings.queue_config,
            "acks_late": bool(conf.task_acks_late),
            "reject_on_worker_lost": bool(conf.task_reject_on_worker_lost),
            "prefetch_multiplier": conf.worker_prefetch_multiplier,
            "retries": (
                f"{retry['max_retries']} retries, {retry['retry_backoff']} s backoff doubling, "
                f"max {retry['retry_backoff_max']} s"
                if retry.get("max_retries")
                else "none"
            ),
            "concurrency_model": "prefork pool (one process per slot)",
            "slots": self._settings.slots,
            "socket_timeout_s": self._settings.redis_socket_timeout_s,
        }
        return common | (
            self._describe_rabbitmq() if self._settings.broker_name == "rabbitmq" else self._describe_redis()
        )

    def _job_status_text(self) -> str:
        """What GET /jobs/{id} can say in this configuration."""
        if not self._stores_results:
            return "none stored (Celery's default): every id reads queued, finished and failed ones too"
        started = "started" if self._app.conf.task_track_started else "no started (running reads queued)"
        return f"Celery's task states in Redis: queued, {started}, succeeded, failed; unknown ids read queued"

    def _describe_redis(self) -> dict[str, Any]:
        transport = self._app.conf.broker_transport_options

        def option(name: str) -> Any:
            return transport.get(name, getattr(RedisChannel, name))  # else kombu's default

        return {
            "broker": "Redis (kombu redis transport)",
            "visibility_timeout_s": option("visibility_timeout"),
            # kombu scans for abandoned unacked messages every interval x throttle seconds.
            "unacked_sweep_s": option("unacked_restore_interval") * option("unacked_restore_throttle"),
        }

    def _describe_rabbitmq(self) -> dict[str, Any]:
        conf = self._app.conf
        return {
            "broker": "RabbitMQ (kombu py-amqp transport)"
            + ("; results in Redis, as the Celery docs pair them" if self._stores_results else ""),
            "queue_type": conf.task_default_queue_type,
            "exchange_type": conf.task_default_exchange_type,
            "delivery_mode": conf.task_default_delivery_mode,
            "confirm_publish": bool(
                queue_config_for(self._settings).options(TRANSPORT).get("confirm_publish")
            ),
            # No visibility timeout: RabbitMQ requeues a consumer's unacked messages when its connection closes.
            "redelivery": "on consumer connection close",
        }

    def close(self) -> None:
        if self._status_client is not None:
            self._status_client.close()
        self._app.close()
