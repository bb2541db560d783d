"""Reading a broker's Redis keys for the fault harness: a reused client and an id count.

Each runner's ``FaultModel.holdings`` knows its own library's key layout; what they share is here.
"""

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import redis

from fbt_tasks.settings import Settings

# A broker that does not answer within this is down: the caller gets the client's error, never a hang.
INSPECTION_TIMEOUT_S = 2
# Clients kept, one per Redis URL: a fault pass runs a few cells at once, each on its own Redis.
KEPT_CLIENTS = 8
_clients: dict[str, redis.Redis] = {}
_lock = threading.Lock()


@contextmanager
def inspection_client(settings: Settings) -> Iterator[redis.Redis]:
    """A client on ``settings.redis_url``, kept for the next call on the same URL.

    The fault harness reads holdings several times a second while it watches: one connection pool per Redis
    instead of a new client (and TCP connection) each time. A pooled connection broken by a Redis restart is
    replaced on the next command (redis-py retries on a fresh connection). The oldest client is closed once
    more than ``KEPT_CLIENTS`` URLs were seen (its cell is over by then).
    """
    url = settings.redis_url
    with _lock:
        client = _clients.get(url)
        if client is None:
            client = redis.Redis.from_url(
                url, socket_timeout=INSPECTION_TIMEOUT_S, socket_connect_timeout=INSPECTION_TIMEOUT_S
            )
            _clients[url] = client
            while len(_clients) > KEPT_CLIENTS:
                _clients.pop(next(iter(_clients))).close()
    yield client


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
