"""The producer side of RQ: a Redis client that fails fast, and the one ``rq.Queue`` jobs go through."""

from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

from fbt_rq.queue_configs import QUEUE_NAME


def make_queue(connection: Redis) -> Queue:
    # JSON, never RQ's default pickle: RQ docs warn pickle "is not secure" (unpickling runs arbitrary code).
    # The worker is started with the same serializer (see fbt_rq.worker), or it could not read the jobs.
    return Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)
