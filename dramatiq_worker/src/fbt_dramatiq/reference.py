"""Dramatiq's own minimal worker path: the fidelity reference (``fbt_tasks.reference``).

    dramatiq fbt_dramatiq.reference --processes WORKER_PROCESSES --threads WORKER_THREADS
    python -m fbt_dramatiq.reference enqueue --n N

Importing it builds a broker from the harness's variables (``fbt_tasks.reference_task``) as a Dramatiq
user would (``RedisBroker(url=...)`` or ``RabbitmqBroker(url=...)``, Dramatiq's default middleware and
JSON encoder), adds what the queue config in force adds on the success path (FBT_REF_OPTIONS, written by
``fbt_dramatiq.plugin``), and declares one actor on FBT_REF_QUEUE that calls ``reference_task.complete``.
It imports the standard library, dramatiq and its Redis/RabbitMQ clients, and ``fbt_tasks.reference_task``:
no other project code, so the gap between the project's drain and this one is the project's own.

FBT_REF_OPTIONS (every key optional; absent means Dramatiq's default):
``broker``: the broker's keyword options; ``actor``: the actor's options (``store_results`` adds Dramatiq's
Results middleware, on FBT_REF_REDIS_URL); ``mark_started``: ``{"ttl_s": N}`` adds one SET per attempt
before the actor runs, the write the project's "started" mark makes.
"""

import os
import resource
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dramatiq
import redis
from dramatiq.middleware import CurrentMessage, Middleware

from fbt_tasks import reference_task

ACTOR_NAME = "fbt_reference.write_log"
# The harness always sets FBT_REF_QUEUE (fbt_tasks.reference.REFERENCE_QUEUE); this is only for a bare import.
QUEUE_NAME = os.environ.get(reference_task.QUEUE_ENV, "fbt-reference")
STARTED_KEY_PREFIX = "fbt-reference:started:"


class MarkStarted(Middleware):
    """The project's per-attempt "started" mark, as a few lines of Dramatiq middleware: one SET with expiry."""

    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self.client = client
        self.ttl_s = ttl_s

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:  # noqa: ARG002 (Dramatiq's middleware hook signature)
        self.client.set(STARTED_KEY_PREFIX + message.message_id, 1, ex=self.ttl_s)


def pika_url(url: str) -> str:
    """AMQP_URL spells the default vhost "//" (kombu's way), which pika reads as the vhost "": say "/%2F"."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/%2F")) if parts.path == "//" else url


def build_broker(options: dict[str, Any]) -> dramatiq.Broker:
    """The broker on FBT_REF_BROKER_URL (amqp:// is RabbitMQ, anything else Redis) with ``options``."""
    url = os.environ.get(reference_task.BROKER_URL_ENV)
    broker_options: dict[str, Any] = dict(options.get("broker", {}))
    broker: dramatiq.Broker
    if url is not None and url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=pika_url(url), **broker_options)
    else:
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(url=url, **broker_options)
    # The actor learns its message id (the job id it records) the library's way.
    broker.add_middleware(CurrentMessage())
    actor_options: dict[str, Any] = options.get("actor", {})
    started: dict[str, Any] | None = options.get("mark_started")
    if actor_options.get("store_results") or started:
        client = redis.Redis.from_url(
            os.environ.get(reference_task.REDIS_URL_ENV, "redis://127.0.0.1:6379/0")
        )
        if actor_options.get("store_results"):
            from dramatiq.results import Results
            from dramatiq.results.backends import RedisBackend

            broker.add_middleware(Results(backend=RedisBackend(client=client)))
        if started:
            broker.add_middleware(MarkStarted(client, ttl_s=int(started["ttl_s"])))
    return broker


OPTIONS: dict[str, Any] = reference_task.options()
# Dramatiq's default encoder is JSONEncoder; the reference keeps it (no pickle anywhere).
broker = build_broker(OPTIONS)
dramatiq.set_broker(broker)


def write_log(message: str) -> None:
    current = CurrentMessage.get_current_message()
    assert current is not None  # the CurrentMessage middleware sets it around every actor call
    reference_task.complete(current.message_id, message, current.message_timestamp / 1000)


# dramatiq.actor(fn, **options) at runtime; its overloads type only the decorator-factory form.
write_log_actor: dramatiq.Actor[[str], None] = dramatiq.actor(  # type: ignore[call-overload]
    write_log, actor_name=ACTOR_NAME, queue_name=QUEUE_NAME, broker=broker, **OPTIONS.get("actor", {})
)


def enqueue(n: int) -> None:
    """Send ``n`` messages with ``actor.send`` as fast as it goes; CPU is measured around the loop only."""
    ids: list[str] = []
    before = resource.getrusage(resource.RUSAGE_SELF)
    for index in range(n):
        ids.append(write_log_actor.send(f"reference job {index}").message_id)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    broker.close()
    reference_task.emit(ids, cpu_s, n)


def main(argv: list[str] | None = None) -> None:
    enqueue(reference_task.enqueue_count("python -m fbt_dramatiq.reference", argv))


if __name__ == "__main__":
    main(sys.argv[1:])
