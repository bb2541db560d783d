"""Is a SAQ worker alive? ``python -m fbt_tasks.health`` asks this with BACKEND set (the compose healthcheck).

Alive means what ``saq --check`` means by it (``Queue.info()["workers"]``): a worker's entry in the queue's
``stats`` sorted set, scored with the moment it expires. Every worker rewrites it every ``timers.worker_info``
seconds (5 s with the safe config, SAQ's 10 s by default) with an expiry one second further, so a live worker
never drops out and a dead one does within that window. A worker that shut down cleanly is not removed at
once either: it too drops out within the window. Read with redis-py's
sync client, the same key and score test SAQ's ``info`` uses.
"""

from redis.exceptions import RedisError
from saq.utils import now

from fbt_saq.wire import QUEUE
from fbt_tasks.redis_client import connect
from fbt_tasks.settings import Settings

STATS_KEY = QUEUE.namespace("stats")


def worker_ready(settings: Settings) -> bool:
    connection = connect(settings)
    try:
        return bool(connection.zrangebyscore(STATS_KEY, now(), "inf"))
    except RedisError:
        return False
    finally:
        connection.close()
