"""taskiq-redis's ``RedisStreamBroker``, reclaiming a dead consumer's messages on an idle queue too.

taskiq-redis 1.2's ``RedisStreamBroker.listen`` runs its XAUTOCLAIM pass only after an XREADGROUP that returned
new messages: an empty read ``continue``s past it. A SIGKILLed worker's pending messages therefore wait for new
traffic, and on a queue that stays idle they wait for good. The upstream fix is still open
(taskiq-python/taskiq-redis#129 adds a ``reclaim_interval``); until it ships, this subclass runs the same pass
after an empty read as well, at most once per ``reclaim_interval_s``. Nothing else changes: a message is still
claimed only once idle ``idle_timeout`` ms, claimed to this consumer, and acked by its own id.
"""

import time
from collections.abc import AsyncGenerator
from typing import Any, cast

from redis.asyncio import Redis
from taskiq import AckableMessage
from taskiq_redis import RedisStreamBroker

# XREADGROUP's reply as redis-py returns it: per stream, its (message id, fields) entries.
Entries = list[tuple[Any, list[tuple[Any, Any]]]] | None


class IdleReclaimStreamBroker(RedisStreamBroker):
    def __init__(self, url: str, *, reclaim_interval_s: float, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.reclaim_interval_s = reclaim_interval_s

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        """New messages as the library reads them; after each read that returned some, or at most every
        ``reclaim_interval_s`` when reads come back empty, the messages idle past ``idle_timeout``."""
        last_reclaim = float("-inf")  # a restarted worker looks for its predecessor's messages at once
        streams: dict[Any, Any] = {self.queue_name: ">", **self.additional_streams}
        async with Redis(connection_pool=self.connection_pool) as conn:
            while True:
                fetched: Entries = cast(
                    Entries,
                    await conn.xreadgroup(
                        self.consumer_group_name,
                        self.consumer_name,
                        streams,
                        block=self.block,
                        noack=False,
                        count=self.count,
                    ),
                )
                for stream, entries in fetched or []:
                    for message_id, fields in entries:
                        yield self._message(stream, message_id, fields)
                if not fetched and time.monotonic() - last_reclaim < self.reclaim_interval_s:
                    continue
                last_reclaim = time.monotonic()
                for stream in (self.queue_name, *self.additional_streams):
                    for message_id, fields in await self._claim_idle(conn, stream):
                        yield self._message(stream, message_id, fields)

    def _message(self, stream: Any, message_id: Any, fields: Any) -> AckableMessage:
        return AckableMessage(data=fields[b"data"], ack=self._ack_generator(id=message_id, queue_name=stream))

    async def _claim_idle(self, conn: "Redis", stream: str) -> list[tuple[Any, Any]]:
        """XAUTOCLAIM under the library's lock (same key, same expiry); another worker holding it is already
        reclaiming, so this one skips the pass instead of waiting."""
        lock = conn.lock(
            f"autoclaim:{self.consumer_group_name}:{stream}", timeout=self.unacknowledged_lock_timeout
        )
        if not await lock.acquire(blocking=False):
            return []
        try:
            claimed = await conn.xautoclaim(
                name=stream,
                groupname=self.consumer_group_name,
                consumername=self.consumer_name,
                min_idle_time=self.idle_timeout,
                count=self.unacknowledged_batch_size,
            )
        finally:
            await lock.release()
        # An entry deleted from the stream comes back without fields: there is nothing left to run.
        return [(message_id, fields) for message_id, fields in claimed[1] if fields]
