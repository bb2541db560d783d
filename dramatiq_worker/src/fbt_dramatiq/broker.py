"""The Dramatiq broker, configured from Settings: Redis or RabbitMQ (BROKER), JSON only, the ``fbt.<kind>`` actors.

Results and the "started" marks, where the queue config keeps them (``queue_configs``: the safe one does,
Dramatiq's defaults do not), live in Redis whichever broker carries the messages (Dramatiq's Results
middleware has Redis and Memcached backends; RabbitMQ keeps no results).

The API and the workers both build it here, each from their own Settings; nothing is global except
Dramatiq's encoder (see ``global_broker`` for the module the ``dramatiq`` CLI loads).
"""

from typing import Any
from urllib.parse import unquote, urlsplit

import dramatiq
import pika
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend
from redis import Redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from fbt_dramatiq.actors import declare_actors
from fbt_dramatiq.middleware import MarkStarted, WorkerHeartbeats
from fbt_dramatiq.queue_configs import (
    ACTOR,
    BROKER,
    MARK_STARTED,
    RABBITMQ_BROKER,
    WORKER_CLIENT,
    queue_config_for,
)
from fbt_tasks.settings import Settings


def redis_client(settings: Settings, ride_out_s: float = 0.0) -> Redis:
    """A client that fails within the socket timeout instead of hanging, or, given ``ride_out_s`` (the
    workers' client in the safe config), one that retries a failed command with backoff for about that long."""
    return Redis.from_url(
        settings.redis_url,
        # Bounds the TCP connect, so a broker that is down or unreachable fails fast (API answers 503).
        socket_connect_timeout=settings.redis_socket_timeout_s,
        # Bounds every reply; Dramatiq never blocks on Redis (fetches are short Lua calls), so this is safe.
        socket_timeout=settings.redis_socket_timeout_s,
        # redis-py 8 retries 10 times with backoff by default, stretching a failure to seconds, and replaying
        # an enqueue whose reply was lost would enqueue the job twice. Fail once; callers decide.
        retry=_ride_out(ride_out_s) if ride_out_s > 0 else Retry(NoBackoff(), 0),
    )


def _ride_out(seconds: float) -> Retry:
    """Retries whose backoffs (50 ms doubling, capped at 1 s) add up to at least ``seconds``."""
    backoff, waited, retries = ExponentialBackoff(cap=1.0, base=0.05), 0.0, 0
    while waited < seconds:
        retries += 1
        waited += backoff.compute(retries)
    return Retry(backoff, retries)


def rabbitmq_parameters(settings: Settings) -> dict[str, Any]:
    """pika connection parameters from AMQP_URL, bounded like the Redis client (a URL alone would not be)."""
    url = urlsplit(settings.amqp_url)
    return {
        "host": url.hostname or "127.0.0.1",
        "port": url.port or 5672,
        "virtual_host": unquote(url.path[1:]) or "/",
        "credentials": pika.PlainCredentials(
            unquote(url.username or "guest"), unquote(url.password or "guest")
        ),
        # A broker that is down or unreachable fails within the socket timeout (API answers 503).
        "socket_timeout": settings.redis_socket_timeout_s,
        "connection_attempts": 1,
    }


def build_broker(
    settings: Settings, *, for_workers: bool = False, client: Redis | None = None
) -> dramatiq.Broker:
    """The broker the API (fail fast: it answers 503) or, ``for_workers``, the worker processes use.

    ``client`` (default: one built here) carries Redis broker calls, results and started marks.
    """
    queue = queue_config_for(settings)
    actor_options = queue.options(ACTOR)
    started = queue.options(MARK_STARTED)
    if started and not actor_options.get("store_results"):
        raise ValueError(
            f"queue config {queue.name!r}: {MARK_STARTED} needs {ACTOR}.store_results, or a finished job "
            "would read 'started' for good"
        )
    if client is None:
        ride_out_s = float(queue.options(WORKER_CLIENT).get("ride_out_s", 0.0)) if for_workers else 0.0
        client = redis_client(settings, ride_out_s)
    # JSONEncoder is Dramatiq's default already; set it anyway so no import order can swap in pickle.
    dramatiq.set_encoder(dramatiq.JSONEncoder())
    broker: dramatiq.Broker
    if settings.broker_name == "rabbitmq":
        # No blocked_connection_timeout, although RabbitMQ's memory alarm then keeps an enqueue waiting until
        # it clears: pika would tear the blocked connection down, but the publish frames it had written sit in
        # the node's socket buffer and are taken once the alarm clears, and Dramatiq retries the publish on a
        # new connection up to 6 times, so a request answered 503 ran several times (tried here: 8 refused
        # requests ran 29 times). A wait that ends in one job beats a quick 503 that ends in six.
        broker = RabbitmqBroker(**rabbitmq_parameters(settings), **queue.options(RABBITMQ_BROKER))
    else:
        # Passing the client (not url=) is what makes the timeouts apply: with url= the broker builds its
        # own connection pool and ignores extra connection parameters.
        broker = RedisBroker(client=client, **queue.options(BROKER))
    if actor_options.get("store_results"):
        # Dramatiq has no status store of its own; Results (its documented way to keep outcomes) stores each
        # actor's return value or final exception, JSON-encoded, under a key derived from the message id.
        broker.add_middleware(Results(backend=RedisBackend(client=client, encoder=dramatiq.JSONEncoder())))
    # Exposes the message being processed, whose options carry the retry count the actors report.
    broker.add_middleware(CurrentMessage())
    if started:
        broker.add_middleware(MarkStarted(client, **started))
    if isinstance(broker, RedisBroker):
        # RabbitMQ needs no heartbeats of ours: the health check counts the queue's consumers instead.
        broker.add_middleware(WorkerHeartbeats())
    declare_actors(broker, actor_options)
    return broker
