"""Reading a broker's Redis keys for the fault harness: a short-lived client and an id count.

Each runner's ``FaultModel.holdings`` knows its own library's key layout; what they share is here.
"""

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import redis

from fbt_tasks.settings import Settings

# A broker that does not answer within this is down: the caller gets the client's error, never a hang.
INSPECTION_TIMEOUT_S = 2


@contextmanager
def inspection_client(settings: Settings) -> Iterator[redis.Redis]:
    """A client of its own on ``settings.redis_url``, closed on exit."""
    client = redis.Redis.from_url(
        settings.redis_url, socket_timeout=INSPECTION_TIMEOUT_S, socket_connect_timeout=INSPECTION_TIMEOUT_S
    )
    try:
        yield client
    finally:
        client.close()


def reply_bytes(member: object) -> bytes:
    """One member of an ``inspection_client`` reply, which is bytes: that client does not decode responses.

    redis-py types replies as ``bytes | str`` (zrange's also as score pairs), decoding being a runtime option.
    """
    if not isinstance(member, bytes):
        raise TypeError(f"expected bytes from inspection_client, got {type(member).__name__}")
    return member


def count_ids(members: Iterable[object], ids: set[str], parse: Callable[[bytes], str] = bytes.decode) -> int:
    """How many of ``members`` (an ``inspection_client`` reply), read as a job id by ``parse``, are among ``ids``."""
    return sum(1 for member in members if parse(reply_bytes(member)) in ids)
