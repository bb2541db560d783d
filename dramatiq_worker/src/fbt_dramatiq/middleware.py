"""Two small worker-side middleware that fill gaps Dramatiq leaves for /jobs/{id} and the healthcheck."""

import dramatiq
from dramatiq.middleware import Middleware
from redis import Redis

# Dramatiq's Redis broker records every broker process here (a sorted set: broker id -> last call, in ms).
HEARTBEATS_KEY = "dramatiq:__heartbeats__"
# API processes enqueue through a broker too and so appear in the heartbeats; workers carry this prefix.
WORKER_ID_PREFIX = "worker-"
STARTED_KEY_PREFIX = "fbt-dramatiq:started:"


def started_key(message_id: str) -> str:
    return STARTED_KEY_PREFIX + message_id


class MarkStarted(Middleware):
    """Dramatiq keeps no "started" state, so record one just before the actor runs.

    Added only where the queue config sets ``MarkStarted.ttl_s`` (the safe one; Dramatiq's defaults do not).

    Cost: one SET (with an expiry) per attempt, on the worker thread, before the actor starts. If Redis
    refuses it, Dramatiq logs the error and runs the actor anyway; /jobs/{id} says "queued" a while longer.
    """

    def __init__(self, client: Redis, ttl_s: int) -> None:
        self.client = client
        self.ttl_s = ttl_s

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:  # noqa: ARG002 (Dramatiq's middleware hook signature)
        self.client.set(started_key(message.message_id), 1, ex=self.ttl_s)


class WorkerHeartbeats(Middleware):
    """Mark worker processes in Dramatiq's heartbeats: prefixed id at boot, "dead" at a clean shutdown.

    The prefix lets the healthcheck tell workers from API processes. It is applied before the consumers start,
    i.e. before this process's first heartbeat, so its heartbeats and acks sets all use one id. At shutdown
    the entry is zeroed rather than removed: maintenance finds dead workers through this set, so anything a
    stopped worker still holds is requeued by the next maintenance, and the healthcheck drops it at once.
    """

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:  # noqa: ARG002 (Dramatiq's middleware hook signature)
        broker.broker_id = WORKER_ID_PREFIX + broker.broker_id  # type: ignore[attr-defined]  # RedisBroker's

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:  # noqa: ARG002 (Dramatiq's middleware hook signature)
        broker.client.zadd(HEARTBEATS_KEY, {broker.broker_id: 0})  # type: ignore[attr-defined]  # RedisBroker's
