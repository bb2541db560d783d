"""The producer side of RQ: a Redis client that fails fast, and the one ``rq.Queue`` jobs go through."""

from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry as RedisRetry
from rq import Queue
from rq.serializers import JSONSerializer

from fbt_rq.queue_configs import QUEUE_NAME
from fbt_tasks.settings import Settings


def connect(settings: Settings) -> Redis:
    """A client for the API and health checks: every call is bounded by REDIS_SOCKET_TIMEOUT_S."""
    timeout = settings.redis_socket_timeout_s
    return Redis.from_url(
        settings.redis_url,
        # Bound connect and every reply, so a dead or hung broker becomes a 503 instead of a hang.
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        # redis-py 8 retries 10 times with backoff by default, which multiplies the bound above and could
        # replay a MULTI/EXEC whose EXEC did reach the server. The pool already reconnects stale connections
        # on checkout, so one attempt is enough: the caller gets a prompt 503 and decides to retry.
        retry=RedisRetry(NoBackoff(), 0),
    )


def make_queue(connection: Redis) -> Queue:
    # JSON, never RQ's default pickle: RQ docs warn pickle "is not secure" (unpickling runs arbitrary code).
    # The worker is started with the same serializer (see fbt_rq.worker), or it could not read the jobs.
    return Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)
