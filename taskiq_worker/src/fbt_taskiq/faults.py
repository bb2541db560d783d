"""What the taskiq runner knows about its own behaviour under faults (``fbt_tasks.runner.FaultModel``).

Read by the fault harness: taskiq-redis's keys for our queue (a stream with a consumer group, or a list),
when a killed worker's messages come back, and one sentence per fault on why taskiq, configured as
``describe()`` recorded, behaved so.
"""

import json
import uuid
from collections.abc import Mapping
from typing import Any

import redis
from redis.exceptions import ResponseError

from fbt_taskiq.queue_configs import CONSUMER_GROUP, QUEUE_NAME, RESULT_PREFIX, broker_class, queue_config_for
from fbt_taskiq.redis_keys import STREAM_FIELD, push, result_key, task_id
from fbt_tasks.fault_words import api_restart, crash, cut, full, malformed, outage, outlasted, slow
from fbt_tasks.holdings import count_ids, inspection_client, reply_bytes
from fbt_tasks.runner import BROKER_TITLES, FaultName, FaultOutcome, Holdings
from fbt_tasks.settings import Settings

StreamId = tuple[int, int]


def _streams(settings: Settings) -> bool:
    return broker_class(queue_config_for(settings)) == "RedisStreamBroker"


def _stream_id(raw: object) -> StreamId:
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def stream_entries(client: redis.Redis) -> dict[StreamId, bytes]:
    """Every entry of our stream (acked ones stay: the broker never trims), by id: its message bytes."""
    return {
        _stream_id(eid): reply_bytes((fields or {}).get(STREAM_FIELD, b""))
        for eid, fields in client.xrange(QUEUE_NAME) or []
    }


def stream_holdings(client: redis.Redis, ids: set[str]) -> tuple[int, int]:
    """(queued, held): entries the group has not delivered yet, and delivered ones still pending (unacked)."""
    ours = {eid: task_id(data) for eid, data in stream_entries(client).items()}
    try:
        groups = client.xinfo_groups(QUEUE_NAME)
    except ResponseError:  # no stream yet
        return 0, 0
    group = next((g for g in groups if _text(g["name"]) == CONSUMER_GROUP), None)
    if group is None:  # no worker has created the group yet: every entry waits
        return sum(1 for job in ours.values() if job in ids), 0
    delivered_up_to = _stream_id(group["last-delivered-id"])
    queued = sum(1 for eid, job in ours.items() if eid > delivered_up_to and job in ids)
    pending = client.xpending_range(QUEUE_NAME, CONSUMER_GROUP, "-", "+", max(1, len(ours)))
    held = sum(1 for p in pending if ours.get(_stream_id(p["message_id"])) in ids)
    return queued, held


def failed_results(client: redis.Redis, ids: set[str]) -> int:
    """Jobs whose stored result is an error: taskiq has no failure queue, only the failed result."""
    if not ids:
        return 0
    stored = client.mget([result_key(job_id) for job_id in ids])
    return sum(1 for value in stored if value is not None and json.loads(value).get("is_err"))


class TaskiqFaults:
    exhausted_to = (
        f"nowhere: the message is acked and dropped, its failed result kept under {RESULT_PREFIX}:<id>"
    )

    def message_locations(self, settings: Settings) -> list[str]:
        if _streams(settings):
            return [f"{QUEUE_NAME} (stream; group {CONSUMER_GROUP}'s pending list)", f"{RESULT_PREFIX}:*"]
        return [f"{QUEUE_NAME} (list)", f"{RESULT_PREFIX}:*"]

    def holdings(self, settings: Settings, ids: set[str]) -> Holdings:
        with inspection_client(settings) as client:
            if _streams(settings):
                queued, held = stream_holdings(client, ids)
            else:
                # BRPOP removed a delivered message: nothing is held, it is in a worker's memory or gone.
                queued, held = count_ids(client.lrange(QUEUE_NAME, 0, -1), ids, task_id), 0
            return Holdings(queued=queued, held=held, scheduled=0, failed=failed_results(client, ids))

    def visibility_timeout_s(self, described: Mapping[str, Any]) -> float | None:  # noqa: ARG002 (FaultModel's signature)
        return None  # this runner refuses delayed jobs (no `taskiq scheduler` process)

    def inject_malformed(self, settings: Settings) -> str:
        """Bytes taskiq's formatter cannot read, written where ``kick`` writes a message."""
        marker = f"poison-{uuid.uuid4().hex}"
        with inspection_client(settings) as client:
            push(client, _streams(settings), f"{{not json {marker}".encode())
        return marker

    def malformed_whereabouts(self, settings: Settings, marker: str) -> str:
        with inspection_client(settings) as client:
            if not _streams(settings):
                listed = [reply_bytes(m) for m in client.lrange(QUEUE_NAME, 0, -1)]
                return (
                    "still in the list"
                    if any(marker.encode() in m for m in listed)
                    else "gone: popped, logged, dropped"
                )
            entries = stream_entries(client)
            found = [eid for eid, data in entries.items() if marker.encode() in data]
            if not found:
                return "gone from the stream"
            pending = client.xpending_range(QUEUE_NAME, CONSUMER_GROUP, "-", "+", max(1, len(entries)))
            if any(_stream_id(p["message_id"]) in found for p in pending):
                return f"pending (unacked) in group {CONSUMER_GROUP}"
            return f"acked in group {CONSUMER_GROUP}: logged and dropped, its entry left in the stream"

    def redelivery_bound_s(self, described: Mapping[str, Any]) -> float | None:
        idle_ms = described.get("idle_timeout_ms")
        if idle_ms is None:
            return None  # ListQueueBroker: a popped message exists only in the killed worker's memory
        # XAUTOCLAIM runs after a read that returned new messages, and with an idle reclaim also after an empty
        # read once per interval: a message idle past the timeout comes back within one interval and one
        # blocking read. Without it, on an idle queue it never runs (the mechanism sentence says so).
        interval = float(described.get("reclaim_interval_s") or 0)
        return float(idle_ms) / 1000 + interval + float(described.get("xread_block_ms") or 0) / 1000

    def mechanism(self, fault: FaultName, described: Mapping[str, Any], result: FaultOutcome) -> str:
        d, r = described, result
        streams = d.get("idle_timeout_ms") is not None
        retry = d.get("retry", "none")
        if fault == "api-deploy":
            return api_restart(result, BROKER_TITLES.get(str(described.get("broker_name", "redis")), "Redis"))
        if fault == "slow-link":
            return slow(result)
        if fault == "partition":
            if r.cut_off == "api":
                return cut(r)
            if not streams:
                told = (
                    "ListQueueBroker removes a message from Redis when a worker takes it: nothing to hand on"
                )
                return f"{told}; {cut(r)}"
            what = "the idle timeout after which XAUTOCLAIM hands a pending message to a consumer again"
            return f"{outlasted(r, self.redelivery_bound_s(d), what)}; {cut(r)}"
        if fault == "kill-worker" or (fault == "deploy" and r.killed):
            if not streams:
                fate = f"{r.lost} were lost" if r.lost else "this kill found none in a worker's hands"
                return (
                    "ListQueueBroker's BRPOP removes a message from Redis when a worker takes it, so a killed "
                    f"worker's jobs exist only in its memory: {fate}"
                )
            idle = float(d["idle_timeout_ms"]) / 1000
            stuck = r.held or r.lost
            interval = d.get("reclaim_interval_s")
            if interval is None:
                came_back = (
                    f"; {stuck} were still pending when the watch ended: no new message reached a worker after "
                    "the timeout, so no XAUTOCLAIM ran"
                    if stuck
                    else ""
                )
                return (
                    "the killed worker's messages stayed pending (unacked) in the stream's consumer group; "
                    f"taskiq-redis reclaims one idle over {idle:g} s with XAUTOCLAIM, run only after a read that "
                    "returned new messages" + came_back
                )
            return (
                "the killed worker's messages stayed pending (unacked) in the stream's consumer group; a live "
                f"worker reclaimed those idle over {idle:g} s with XAUTOCLAIM, run after an empty read too at most "
                f"every {float(interval):g} s (taskiq-redis alone runs it only after a read that returned new "
                "messages, taskiq-redis#129)"
                + (f"; {stuck} were still pending when the watch ended" if stuck else "")
            )
        if fault == "deploy":
            return (
                "on SIGTERM taskiq stops reading, lets running tasks finish and acks them; messages read but not "
                "started are dropped from memory"
                + (", still pending in the stream" if streams else " and lost")
            )
        if fault == "broker-restart":
            pending_note = (
                f"; {r.held} stayed pending (unacked) and, the queue being idle after, no XAUTOCLAIM ran"
                if streams and r.held and d.get("reclaim_interval_s") is None
                else f"; {r.held} were still pending (unacked) when the watch ended"
                if streams and r.held
                else ""
            )
            return (
                "Redis's AOF kept the queue and the workers reconnected; " + outage(r, retry) + pending_note
            )
        if fault == "broker-crash":
            return crash(r) + "; the workers reconnected"
        if fault == "broker-full":
            return (
                f"taskiq-redis enqueues with one XADD, which a full Redis refuses, so a refused job was never stored; "
                f"{full(r)}; " + outage(r, retry if retry != "none" else "nothing")
            )
        if fault == "delay-past-timeout":
            return "not measured: this runner refuses delayed jobs (taskiq delays only through its scheduler process)"
        if fault == "poison-message":
            return (
                "taskiq logs a message its formatter cannot read and acks it without running anything; "
                + malformed(r)
            )
        if retry != "none":
            return (
                f"{retry}: each refused attempt was re-sent at once with the same task id; one that exhausts them "
                "is acked and dropped, only its failed result kept"
            )
        return (
            "taskiq retries nothing without a retry middleware: each refused job failed once, its error kept as "
            "its result"
        )


FAULTS = TaskiqFaults()
