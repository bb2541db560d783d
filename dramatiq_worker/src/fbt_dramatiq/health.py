"""Is a Dramatiq worker alive? Read the heartbeats Dramatiq's Redis broker itself keeps.

Every broker call a process makes stamps its broker id in ``dramatiq:__heartbeats__`` (dispatch.lua); a
worker's idle consumers poll about once a second, so a fresh stamp means a worker process is running and
talking to Redis. Worker ids carry a prefix (``middleware.WorkerHeartbeats``) because API processes
stamp the same set when they enqueue. ``python -m fbt_dramatiq.health`` exits 0 if a worker is alive.
"""

import sys
import time

import redis

from fbt_dramatiq.broker import redis_client
from fbt_dramatiq.middleware import HEARTBEATS_KEY, WORKER_ID_PREFIX
from fbt_tasks.settings import Settings, get_settings

# Ten missed polls in a row: the process is gone or wedged. Kept apart from heartbeat_timeout (60 s in the
# defaults queue config), which decides when messages are requeued, not when a worker is reported down.
FRESH_MS = 10_000


def worker_ready(settings: Settings) -> bool:
    client = redis_client(settings)
    try:
        # Stamps are the workers' wall clock in ms, as Dramatiq's own maintenance compares them.
        fresh = client.zrangebyscore(HEARTBEATS_KEY, time.time() * 1000 - FRESH_MS, "+inf")
    except redis.RedisError:
        return False
    finally:
        client.close()
    # Without withscores and decode_responses every member is bytes; redis-py types the reply wider.
    return any(
        isinstance(broker_id, bytes) and broker_id.startswith(WORKER_ID_PREFIX.encode())
        for broker_id in fresh
    )


def main() -> None:
    alive = worker_ready(get_settings())
    print("a dramatiq worker is alive" if alive else "no dramatiq worker heartbeat in the last 10 s")
    sys.exit(0 if alive else 1)


if __name__ == "__main__":
    main()
