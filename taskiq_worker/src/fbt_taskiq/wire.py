"""taskiq's wire format on Redis, written and read with the sync redis-py client the API already has.

taskiq's ``kiq`` is a coroutine on redis.asyncio. ``Backend.enqueue`` is sync (called from the API's sync
routes on the threadpool), so it would need an event loop per call or a loop thread to hop to. Instead the
message is built by taskiq's own formatter (``broker.formatter.dumps``, JSON) and written with the one
command the broker's ``kick`` sends: XADD ``<queue> * data <message>`` (RedisStreamBroker.kick, maxlen None)
or LPUSH ``<queue> <message>`` (ListQueueBroker.kick).
"""

import json
from typing import Any

from redis import Redis
from taskiq import AsyncBroker, TaskiqMessage

from fbt_taskiq.queue_configs import QUEUE_NAME
from fbt_taskiq.tasks import task_name
from fbt_tasks.jobs import Job

# RedisStreamBroker.kick's one field per stream entry.
STREAM_FIELD = b"data"


def encode(broker: AsyncBroker, job: Job) -> bytes:
    """The bytes ``kiq`` would send for ``fbt.<kind>(job.to_message())`` with our id as taskiq's task id."""
    message = TaskiqMessage(
        task_id=job.id,
        task_name=task_name(job.kind),
        labels={},
        labels_types={},
        args=[job.to_message()],
        kwargs={},
    )
    return broker.formatter.dumps(message).message


def push(client: Redis, streams: bool, data: bytes) -> None:
    if streams:
        client.xadd(QUEUE_NAME, {STREAM_FIELD: data})
    else:
        client.lpush(QUEUE_NAME, data)


def task_id(data: bytes | str) -> str:
    """The task id in a stored message; "" for bytes that are not a taskiq message (a malformed one)."""
    try:
        found: Any = json.loads(data)
        return str(found.get("task_id", ""))
    except (ValueError, AttributeError):
        return ""
