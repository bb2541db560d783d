"""taskiq-redis's keys for our queue, read and written with redis-py; no taskiq import.

Importing taskiq costs seconds (taskiq_dependencies imports FastAPI), so the health check, the fault model
and the API's Redis client stay on this module.
"""

import json
from typing import Any

from redis import Redis

from fbt_taskiq.queue_configs import QUEUE_NAME, RESULT_PREFIX

# RedisStreamBroker.kick's one field per stream entry.
STREAM_FIELD = b"data"


def push(client: Redis, streams: bool, data: bytes) -> None:
    """The one command a broker's ``kick`` sends: XADD (RedisStreamBroker, maxlen None) or LPUSH (ListQueueBroker)."""
    if streams:
        client.xadd(QUEUE_NAME, {STREAM_FIELD: data})
    else:
        client.lpush(QUEUE_NAME, data)


def result_key(job_id: str) -> str:
    """RedisAsyncResultBackend's key for a task's result (``<prefix_str>:<task id>``)."""
    return f"{RESULT_PREFIX}:{job_id}"


def task_id(data: bytes | str) -> str:
    """The task id in a stored message; "" for bytes that are not a taskiq message (a malformed one)."""
    try:
        found: Any = json.loads(data)
        return str(found.get("task_id", ""))
    except (ValueError, AttributeError):
        return ""
