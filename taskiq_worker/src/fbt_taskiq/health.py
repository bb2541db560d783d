"""Is a taskiq worker alive? ``python -m fbt_taskiq.health`` exits 0 if so, 1 if not (the compose healthcheck).

taskiq keeps no worker registry. Every connection a worker process opens is named (fbt_taskiq.broker), so
alive means what Redis sees: at least one open connection by that name on our database. A SIGKILLed worker's sockets are
closed by the kernel, so it drops out of CLIENT LIST at once; the `taskiq worker` parent that only supervises
holds none.
"""

import sys

from redis.exceptions import RedisError

from fbt_taskiq.queue_configs import WORKER_CLIENT_NAME
from fbt_tasks.redis_client import connect
from fbt_tasks.registry import configured_settings
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


def main() -> None:
    ready = worker_ready(configured_settings())
    print("taskiq worker: alive" if ready else "taskiq worker: none alive")
    sys.exit(0 if ready else 1)


if __name__ == "__main__":
    main()
