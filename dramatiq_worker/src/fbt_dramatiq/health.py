"""Is a Dramatiq worker alive? Read the heartbeats Dramatiq's Redis broker itself keeps.

Every broker call a process makes stamps its broker id in ``dramatiq:__heartbeats__`` (dispatch.lua); a
worker's idle consumers poll about once a second, so a fresh stamp means a worker process is running and
talking to Redis. Worker ids carry a prefix (``middleware.WorkerHeartbeats``) because API processes
stamp the same set when they enqueue. On RabbitMQ the broker itself knows: a worker is alive while it
consumes our queue (API processes only publish). ``python -m fbt_tasks.health`` (BACKEND=dramatiq) exits 0
if a worker is alive.
"""

import time

import pika
import pika.exceptions
import redis

from fbt_dramatiq.actors import QUEUE_NAME
from fbt_dramatiq.broker import rabbitmq_parameters, redis_client
from fbt_dramatiq.middleware import HEARTBEATS_KEY, WORKER_ID_PREFIX
from fbt_tasks.settings import Settings

# Ten missed polls in a row: the process is gone or wedged. Kept apart from heartbeat_timeout (60 s in the
# defaults queue config), which decides when messages are requeued, not when a worker is reported down.
FRESH_MS = 10_000


def queue_counts(settings: Settings, queue: str) -> tuple[int, int] | None:
    """(ready messages, consumers) of a RabbitMQ queue by a passive declare; (0, 0) before it exists.

    None when RabbitMQ does not answer. Nothing is consumed; unacked messages are not counted (AMQP shows
    them only to their consumer).
    """
    try:
        connection = pika.BlockingConnection(pika.ConnectionParameters(**rabbitmq_parameters(settings)))
    except pika.exceptions.AMQPError:
        return None
    try:
        declared = connection.channel().queue_declare(queue, passive=True)
        return declared.method.message_count, declared.method.consumer_count
    except pika.exceptions.ChannelClosedByBroker:
        return 0, 0  # 404: no worker or publisher declared it yet
    except pika.exceptions.AMQPError:
        return None
    finally:
        if connection.is_open:
            connection.close()


def rabbitmq_consumers(settings: Settings) -> int | None:
    """Consumers of our queue (workers), or None when RabbitMQ does not answer."""
    counts = queue_counts(settings, QUEUE_NAME)
    return None if counts is None else counts[1]


def worker_ready(settings: Settings) -> bool:
    if settings.broker_name == "rabbitmq":
        return bool(rabbitmq_consumers(settings))
    client = redis_client(settings)
    try:
        # Stamps are the workers' wall clock in ms, as Dramatiq's own maintenance compares them.
        fresh = client.zrangebyscore(HEARTBEATS_KEY, time.time() * 1000 - FRESH_MS, "+inf")
    except redis.RedisError:
        return False
    finally:
        client.close()
    # Without withscores and decode_responses every member is bytes; redis-py types the reply wider.
    return any(
        isinstance(broker_id, bytes) and broker_id.startswith(WORKER_ID_PREFIX.encode())
        for broker_id in fresh
    )
