"""Is an arq worker alive? ``python -m fbt_tasks.health`` asks this with BACKEND set (the compose healthcheck).

Alive means what ``arq --check`` means by it: arq's health-check key for our queue exists. Every worker
writes it at its first poll and then every health_check_interval, with a TTL one second longer, and a
worker that shuts down cleanly deletes it. So a fresh worker is ready at once, and a SIGKILLed one drops
out within health_check_interval + 1 s (the key is shared by the queue's workers: any live one keeps it).
``arq --check`` itself cannot serve here: it needs the worker settings and reconnects up to five times.
"""

from redis.exceptions import RedisError

from fbt_arq.wire import HEALTH_CHECK_KEY
from fbt_tasks.redis_client import connect
from fbt_tasks.settings import Settings


def worker_ready(settings: Settings) -> bool:
    client = connect(settings)
    try:
        return bool(client.exists(HEALTH_CHECK_KEY))
    except RedisError:
        return False
    finally:
        client.close()
