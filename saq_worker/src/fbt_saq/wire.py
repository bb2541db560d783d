"""SAQ's own wire format on Redis for our queue: its key names, its job JSON and its enqueue script.

SAQ (saq/queue/redis.py, ``RedisQueue``) keeps a job as one JSON string at ``saq:job:<queue>:<key>`` and
its place in three keys: the ``queued`` list (ids waiting for a worker), the ``active`` list (ids a worker
took with BLMOVE and has not finished) and the ``incomplete`` sorted set (every unfinished id, scored with
its ``scheduled`` epoch seconds; 0 once due). A delayed job or a retry waiting out ``retry_delay`` is only in
``incomplete`` until a worker's schedule pass (every second) pushes it onto ``queued``.

``QUEUE`` is a real ``RedisQueue`` used only for its naming and JSON (``Queue.serialize``): its asyncio
client is never connected, so the sync API side and the fault harness share the library's own format.
"""

import inspect

from redis import asyncio as aioredis
from saq.queue.redis import RedisQueue

QUEUE_NAME = "fbt"
QUEUE = RedisQueue(aioredis.Redis(), name=QUEUE_NAME)

QUEUED_KEY = QUEUE.namespace("queued")
ACTIVE_KEY = QUEUE.namespace("active")
INCOMPLETE_KEY = QUEUE.namespace("incomplete")
JOB_KEY_PREFIX = QUEUE.job_id("")

# SAQ 0.26's enqueue script, verbatim from ``RedisQueue._enqueue`` (which registers it inline): refuse a key
# already unfinished or being aborted, else store the job and, when it is due now (scheduled 0), queue it.
# One script, so Redis runs it all or nothing. ``enqueue_script_is_saqs`` checks the copy against the
# installed library, so an upgrade that changes the format fails a test instead of writing jobs SAQ can't read.
ENQUEUE_LUA = """
                if not redis.call('ZSCORE', KEYS[1], KEYS[2]) and redis.call('EXISTS', KEYS[4]) == 0 then
                    redis.call('SET', KEYS[2], ARGV[1])
                    redis.call('ZADD', KEYS[1], ARGV[2], KEYS[2])
                    if ARGV[2] == '0' then redis.call('RPUSH', KEYS[3], KEYS[2]) end
                    return 1
                else
                    return nil
                end
                """


def enqueue_script_is_saqs() -> bool:
    return ENQUEUE_LUA in inspect.getsource(RedisQueue._enqueue)


def job_id(key: str) -> str:
    """SAQ's Redis key (its ``Job.id``) for the job whose ``key`` is our job id."""
    return QUEUE.job_id(key)


def key_of(member: bytes) -> str:
    """Our job id from a member of the queued/active/incomplete keys (``saq:job:fbt:<key>``)."""
    return member.decode().removeprefix(JOB_KEY_PREFIX)
