"""Is a taskiq worker alive? ``python -m fbt_tasks.health`` asks this with BACKEND set (the compose healthcheck).

taskiq keeps no worker registry. Every connection a worker process opens is named (fbt_taskiq.broker), so
alive means what Redis sees: at least one open connection by that name on our database. A SIGKILLed worker's sockets are
closed by the kernel, so it drops out of CLIENT LIST at once; the `taskiq worker` parent that only supervises
holds none.
"""

from redis.exceptions import RedisError

from fbt_taskiq.queue_configs import WORKER_CLIENT_NAME
from fbt_tasks.redis_client import connect
from fbt_tasks.settings import Settings


def worker_ready(settings: Settings) -> bool:
    client = connect(settings)
    db = str(client.connection_pool.connection_kwargs.get("db", 0))
    try:
        return any(c.get("name") == WORKER_CLIENT_NAME and c.get("db") == db for c in client.client_list())
    except RedisError:
        return False
    finally:
        client.close()
