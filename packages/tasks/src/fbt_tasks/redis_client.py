"""The sync Redis client the broker runners' APIs and health checks use: every call bounded, one attempt."""

from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from fbt_tasks.settings import Settings


def connect(settings: Settings) -> Redis:
    """A client on REDIS_URL whose every call is bounded by REDIS_SOCKET_TIMEOUT_S."""
    timeout = settings.redis_socket_timeout_s
    return Redis.from_url(
        settings.redis_url,
        # Bound connect and every reply, so a dead or hung broker becomes a 503 instead of a hang.
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        # redis-py 8 retries 10 times with backoff by default, which multiplies the bound above and could
        # replay a MULTI/EXEC whose EXEC did reach the server. The pool already reconnects stale connections
        # on checkout, so one attempt is enough: the caller gets a prompt 503 and decides to retry.
        retry=Retry(NoBackoff(), 0),
    )


def answers(client: Redis) -> bool:
    """Whether Redis answers a PING within the client's bound (``Backend.ping``: 503 when it does not)."""
    try:
        return bool(client.ping())
    except RedisError:
        return False
