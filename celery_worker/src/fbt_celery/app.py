"""The Celery app: Redis or RabbitMQ (BROKER) as broker, Redis as result backend where the queue config keeps
one (safe; ``defaults`` has none, as Celery ships), JSON only.

``celery -A fbt_celery.app worker`` finds ``app`` here. It is built on first access (PEP 562), so the API,
which builds its own app from the settings it was given, never reads the environment by importing this.

The settings the queue config (QUEUE_CONFIG) chooses live in ``queue_configs``, with the reason for each;
this module applies them where Celery takes them.
"""

from typing import Any

import amqp.exceptions
import redis.exceptions
from celery import Celery
from kombu.exceptions import OperationalError

from fbt_celery.queue_configs import RESULTS_IN_REDIS, TRANSPORT, queue_config_for
from fbt_tasks.registry import configured_settings
from fbt_tasks.settings import ANYIO_DEFAULT_THREADPOOL, Settings

# Long enough to poll /jobs after a benchmark run; short enough that load tests do not pile up in Redis.
RESULT_EXPIRES_S = 3600

# What "Redis did not serve the request" looks like through Celery: kombu wraps the transport's connection
# and channel errors in OperationalError; the Redis result backend lets redis-py's own errors through
# (connection, timeout, an error reply such as OOM); a bare socket raises OSError. On RabbitMQ, py-amqp's
# own errors (a channel closed by the broker, a publish nacked under confirms) come through as AMQPError.
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    redis.exceptions.RedisError,
    amqp.exceptions.AMQPError,
    OSError,
)


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    """kombu transport options: socket timeouts on Redis, the queue config's options on top."""
    if settings.broker_name == "rabbitmq":
        # py-amqp hands these to amqp.Connection: no producer retry (as on Redis), publisher confirms
        # when the queue config asks for them. The connect is bounded by broker_connection_timeout.
        return {"max_retries": 0} | queue_config_for(settings).options(TRANSPORT)
    options: dict[str, Any] = {
        # Without these a publish to a dead or unreachable Redis waits forever (kombu transport docs).
        "socket_timeout": settings.redis_socket_timeout_s,
        "socket_connect_timeout": settings.redis_socket_timeout_s,
        # A producer that finds no broker gives up at once instead of retrying (Celery docs:
        # broker_transport_options max_retries, "so producers won't retry forever"); redis-py already
        # reconnects a pooled connection that a restarted server closed.
        "max_retries": 0,
    }
    # The safe queue config's visibility timeout and unacked sweep (see queue_configs.VISIBILITY_TIMEOUT_S).
    return options | queue_config_for(settings).options(TRANSPORT)


def celery_config(settings: Settings) -> dict[str, Any]:
    """Every Celery setting we change, for the given settings and queue config."""
    timeout = settings.redis_socket_timeout_s
    config: dict[str, Any] = {
        "broker_url": settings.amqp_url if settings.broker_name == "rabbitmq" else settings.redis_url,
        # JSON is Celery's default since 4.0; pinned so no pickle can ever be accepted (security guide).
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "result_expires": RESULT_EXPIRES_S,
        # No publish retry (default: 3 retries up to 1 s apart), so the API answers 503 within the socket
        # timeout. A retry would also replay an LPUSH whose reply timed out, enqueueing the job twice;
        # a pooled connection the server closed is already reconnected by redis-py before use.
        "task_publish_retry": False,
        # Worker's own connect timeout (default 4 s); the docs say producers need the transport options.
        "broker_connection_timeout": timeout,
        # One pooled broker connection per API thread that may publish at once (default 10; the docs say
        # to size it to the threads using a connection), so requests do not queue for a connection...
        # At least 2, so the health check's control.ping never waits on the one connection a publisher holds.
        "broker_pool_limit": max(2, settings.api_threadpool or ANYIO_DEFAULT_THREADPOOL),
        # ...and a thread that still has to wait gives up after the socket timeout (default: forever).
        "broker_pool_acquire_timeout": timeout,
        "broker_transport_options": broker_transport_options(settings),
        # Result backend reads and writes (default 120 s) and connects (default: none) must not hang either.
        "redis_socket_timeout": timeout,
        "redis_socket_connect_timeout": timeout,
        # The result backend's connection retries (its default policy is 20 retries, up to 1 s apart).
        "result_backend_transport_options": {"retry_policy": {"max_retries": 1, "timeout": timeout}},
    }
    # The queue config's app settings (result backend, STARTED, late ack, requeue on a lost worker,
    # prefetch 1; see queue_configs), bare names there; dotted ones go to the transport options above or to
    # the tasks (fbt_celery.tasks). A queue config without ``result_backend`` leaves Celery's default: none
    # (DisabledBackend), so no state is stored; the result_* and redis_* settings above then act on nothing.
    queue = queue_config_for(settings)
    config |= {key: setting.value for key, setting in queue.settings.items() if "." not in key}
    if config.get("result_backend") == RESULTS_IN_REDIS:
        config["result_backend"] = settings.redis_url  # the queue config names the server, not its URL
    return config


def create_app(settings: Settings) -> Celery:
    """A Celery app for these settings, with one task per kind registered."""
    from fbt_celery.tasks import register_tasks

    app = Celery("fbt", set_as_current=False)
    app.conf.update(celery_config(settings))
    register_tasks(app, settings)
    return app


def __getattr__(name: str) -> Celery:
    if name == "app":
        app = create_app(configured_settings())
        globals()["app"] = app
        return app
    raise AttributeError(name)
