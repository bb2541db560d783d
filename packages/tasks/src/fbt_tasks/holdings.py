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


def count_ids(members: Iterable[bytes], ids: set[str], parse: Callable[[bytes], str] = bytes.decode) -> int:
    """How many of ``members``, read as a job id by ``parse``, are among ``ids``."""
    return sum(1 for member in members if parse(member) in ids)
