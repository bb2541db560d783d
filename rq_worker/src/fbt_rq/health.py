"""Is an RQ worker alive? ``python -m fbt_tasks.health`` asks this with BACKEND set (the compose healthcheck).

Alive means what RQ itself means by it: registered in the queue's worker registry (a worker that shut down
cleanly unregisters) with a heartbeat younger than worker_ttl + 60 s, the TTL RQ puts on a worker's key.
An idle worker heartbeats every worker_ttl - 15 s and a busy fork worker every job-monitoring interval, so a
live worker never misses that window; a SIGKILLed one drops out of it within worker_ttl + 60 s
(80 s with the safe queue config, 8 minutes with RQ's defaults).
"""

from datetime import UTC, datetime, timedelta

from redis.exceptions import RedisError
from rq import Worker
from rq.serializers import JSONSerializer

from fbt_rq.queue import make_queue
from fbt_rq.queue_configs import queue_config_for, worker_key_ttl
from fbt_tasks.redis_client import connect
from fbt_tasks.settings import Settings


def worker_ready(settings: Settings) -> bool:
    window = timedelta(seconds=worker_key_ttl(queue_config_for(settings)))
    connection = connect(settings)
    try:
        queue = make_queue(connection)
        workers = Worker.all(queue=queue, serializer=JSONSerializer)
    except RedisError:
        return False
    finally:
        connection.close()
    now = datetime.now(UTC)
    return any(w.last_heartbeat is not None and now - _aware(w.last_heartbeat) < window for w in workers)


def _aware(moment: datetime) -> datetime:
    # RQ stores UTC timestamps; depending on the version they come back naive or aware.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
