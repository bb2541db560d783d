"""The Celery app: Redis as broker and result backend, JSON only, configured from ``fbt_tasks`` settings.

``celery -A fbt_celery.app worker`` finds ``app`` here. It is built on first access (PEP 562), so the API,
which builds its own app from the settings it was given, never reads the environment by importing this.

Two reliability profiles (QUEUE_CONFIG):
- ``defaults``: Celery out of the box. The message is acked *before* the task runs (early ack), so a
  worker killed mid-task loses it; a failed task is not retried.
- ``safe``: the configuration the Celery docs give for not losing work: late ack, requeue when the pool
  process dies, one reserved message per process, a visibility timeout sized to our longest task, and
  up to three attempts with a short backoff. The price is at-least-once delivery: tasks must be
  idempotent (email is, through ``fbt_tasks.once``; logs and resizes tolerate a repeat).
"""

from typing import Any

import redis.exceptions
from celery import Celery
from kombu.exceptions import OperationalError

from fbt_tasks.settings import Settings, get_settings

# kombu's Redis transport emulates acks: a delivered message sits in the ``unacked`` hash until acked, and
# any consumer's periodic sweep requeues entries older than the visibility timeout. It must exceed the
# longest a message stays unacked (reserved + running), or a live task is delivered a second time. Our
# longest task is resize_image at its 40-megapixel limit: 1.7 s alone on one core here, so roughly 7 s with
# 8 slots sharing 2 cores; an email is bounded by one SMTP exchange at SMTP_TIMEOUT_S (10 s). 30 s covers
# both with margin, and is also how long the jobs of a SIGKILLed worker wait before they are redelivered.
# (A redelivered email may first wait out the dead attempt's lease in fbt_tasks.once, past 30 s; a further
# delivery then finds the sent record and skips, so the worst case is a wasted attempt, never a 2nd email.)
VISIBILITY_TIMEOUT_S = 30
# kombu sweeps every ``unacked_restore_interval`` s but scans Redis only on every
# ``unacked_restore_throttle``-th sweep: 10 x 10 by default, so abandoned messages came back ~100 s late
# whatever the visibility timeout. Scanning every second bounds redelivery to visibility timeout + 1 s.
UNACKED_SWEEP_S = 1
# Starlette runs sync routes on anyio's default limiter when API_THREADPOOL is 0.
ANYIO_DEFAULT_THREADS = 40
# Long enough to poll /jobs after a benchmark run; short enough that load tests do not pile up in Redis.
RESULT_EXPIRES_S = 3600

# What "Redis did not serve the request" looks like through Celery: kombu wraps the transport's connection
# and channel errors in OperationalError; the Redis result backend lets redis-py's own errors through
# (connection, timeout, an error reply such as OOM); a bare socket raises OSError.
BROKER_ERRORS: tuple[type[BaseException], ...] = (OperationalError, redis.exceptions.RedisError, OSError)


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    """kombu Redis transport options: socket timeouts always, the redelivery tuning in the safe profile."""
    options: dict[str, Any] = {
        # Without these a publish to a dead or unreachable Redis waits forever (kombu transport docs).
        "socket_timeout": settings.redis_socket_timeout_s,
        "socket_connect_timeout": settings.redis_socket_timeout_s,
        # A producer that finds no broker gives up at once instead of retrying (Celery docs:
        # broker_transport_options max_retries, "so producers won't retry forever"); redis-py already
        # reconnects a pooled connection that a restarted server closed.
        "max_retries": 0,
    }
    if settings.queue_config == "safe":
        options |= {
            # See VISIBILITY_TIMEOUT_S; the Celery Redis docs default is 1 hour.
            "visibility_timeout": VISIBILITY_TIMEOUT_S,
            # See UNACKED_SWEEP_S (kombu transport docs: set the throttle to 1 to make the interval the
            # sole control; lower the interval to recover abandoned messages faster).
            "unacked_restore_interval": UNACKED_SWEEP_S,
            "unacked_restore_throttle": 1,
        }
    return options


def celery_config(settings: Settings) -> dict[str, Any]:
    """Every Celery setting we change, for the given settings and reliability profile."""
    timeout = settings.redis_socket_timeout_s
    config: dict[str, Any] = {
        "broker_url": settings.redis_url,
        # The Redis result backend holds each task's state so /jobs can answer; same server as the broker.
        "result_backend": settings.redis_url,
        # JSON is Celery's default since 4.0; pinned so no pickle can ever be accepted (security guide).
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # Report STARTED while a task runs (off by default: "not that level of granularity"); /jobs needs it.
        "task_track_started": True,
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
        "broker_pool_limit": max(2, settings.api_threadpool or ANYIO_DEFAULT_THREADS),
        # ...and a thread that still has to wait gives up after the socket timeout (default: forever).
        "broker_pool_acquire_timeout": timeout,
        "broker_transport_options": broker_transport_options(settings),
        # Result backend reads and writes (default 120 s) and connects (default: none) must not hang either.
        "redis_socket_timeout": timeout,
        "redis_socket_connect_timeout": timeout,
        # The result backend's connection retries (its default policy is 20 retries, up to 1 s apart).
        "result_backend_transport_options": {"retry_policy": {"max_retries": 1, "timeout": timeout}},
    }
    if settings.queue_config == "safe":
        config |= {
            # Ack after the task ran, not before, so a task killed mid-run is redelivered (task_acks_late).
            "task_acks_late": True,
            # Even with late ack Celery acks when the pool process dies (SIGKILL, OOM); requeue instead.
            # The docs warn this can loop on a task that always kills its process: none of ours does.
            "task_reject_on_worker_lost": True,
            # "Reserve one task at a time" (optimizing guide): with late ack, a dying worker holds at most
            # one unacked message per process, and long tasks do not sit behind each other in one worker.
            "worker_prefetch_multiplier": 1,
            # A late-ack task cannot ack after a broker connection loss and is redelivered anyway; the
            # docs make cancelling it the default in Celery 6 because running it twice in parallel
            # "leads to more problems than it solves".
            "worker_cancel_long_running_tasks_on_connection_loss": True,
        }
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
        app = create_app(get_settings())
        globals()["app"] = app
        return app
    raise AttributeError(name)
