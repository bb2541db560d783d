"""The API's side of arq's Redis: a synchronous redis-py client that fails fast.

arq's own client (``ArqRedis``) is asyncio-only, and the API calls ``Backend.enqueue`` from its threadpool
(sync routes). So the API writes and reads arq's data with redis-py directly, in arq's format (fbt_arq.wire);
the worker is arq's own.
"""

from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry as RedisRetry

from fbt_tasks.settings import Settings


def connect(settings: Settings) -> Redis:
    """A client for the API and health checks: every call is bounded by REDIS_SOCKET_TIMEOUT_S."""
    timeout = settings.redis_socket_timeout_s
    return Redis.from_url(
        settings.redis_url,
        # Bound connect and every reply, so a dead or hung broker becomes a 503 instead of a hang.
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        # One attempt: a retried MULTI/EXEC whose EXEC did reach the server could enqueue twice, and retries
        # multiply the bound above. The pool reconnects stale connections on checkout anyway.
        retry=RedisRetry(NoBackoff(), 0),
    )
