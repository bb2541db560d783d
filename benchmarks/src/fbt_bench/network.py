"""What the hosts topology adds to a record: the RTT asked for and measured, how it was made, and the Redis
commands each completed task cost (``INFO commandstats`` deltas over the scenario).

Commands are an upper bound on round trips: a pipeline or MULTI/EXEC sends several in one round trip, so the
report calls them commands, never round trips.
"""

from typing import Any
from urllib.parse import urlparse

import redis

from fbt_devstack.netns import Hosts, round_trip_ms

# The harness's own INFO calls are not the runner's cost.
OWN_COMMANDS = frozenset({"info"})


def commandstats(redis_url: str) -> dict[str, int]:
    """Calls per command so far on the Redis behind ``redis_url``."""
    client = redis.Redis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=10)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    # redis-py parses "cmdstat_get:calls=3,usec=..." into {"cmdstat_get": {"calls": 3, ...}}.
    return {
        name.removeprefix("cmdstat_"): int(value["calls"])
        for name, value in stats.items()
        if isinstance(value, dict) and name.removeprefix("cmdstat_") not in OWN_COMMANDS
    }


def measured_rtt_ms(hosts: Hosts, redis_url: str, role: str = "workers") -> float:
    """A worker host's median TCP round trip to the broker endpoint its clients use."""
    where = urlparse(redis_url)
    return round(round_trip_ms(hosts.exec_prefix(role), where.hostname or "", where.port or 6379), 3)


def annotate(
    records: list[dict[str, Any]],
    hosts: Hosts,
    rtt_measured_ms: float,
    before: dict[str, int],
    after: dict[str, int],
) -> None:
    """Add ``rtt_ms`` and ``network`` to the records one scenario made (steady's fractions share a window)."""
    delta = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    delta = {name: calls for name, calls in delta.items() if calls > 0}
    total = sum(delta.values())
    completed = sum(int(record.get("completed", 0)) for record in records)
    for record in records:
        record["rtt_ms"] = hosts.rtt_ms
        record["network"] = {
            "rtt_measured_ms": rtt_measured_ms,
            "delay_method": hosts.delay_method,
            "redis_commands": total,
            "redis_commands_completed": completed,
            "redis_commands_per_task": round(total / completed, 2) if completed else None,
            "redis_commands_by_name": dict(sorted(delta.items(), key=lambda item: -item[1])),
        }
