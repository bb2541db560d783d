"""The two reliability profiles (QUEUE_CONFIG): Dramatiq's out-of-the-box behaviour, and the safe one.

Dramatiq's Redis broker acks late: a worker moves each message it fetches into an "acks" set of its own and
removes it only after the actor returned (``dramatiq/brokers/redis/dispatch.lua``). A SIGKILLed worker's
messages therefore stay in Redis, and *queue maintenance* puts them back once the worker's heartbeat is
older than ``heartbeat_timeout``: "some time (the heartbeat timeout) has to pass until those messages are
put back on their respective queues" (Bogdanp, dramatiq#527). Maintenance is not a timer: each broker
command runs it with probability ``maintenance_chance`` per million. Both profiles lose nothing on SIGKILL;
they differ in how soon the messages come back, and in retries.
"""

from dataclasses import dataclass, field
from typing import Any

from fbt_tasks.settings import Settings


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    # Keyword arguments for RedisBroker; a missing key means Dramatiq's default.
    broker_options: dict[str, int] = field(default_factory=dict)
    # Options every actor is declared with; a missing key means the middleware's default.
    actor_options: dict[str, Any] = field(default_factory=dict)


# Nothing set: RedisBroker(heartbeat_timeout=60_000, maintenance_chance=1_000), Retries(max_retries=20,
# min_backoff=15 s, max_backoff=7 days), TimeLimit(10 min). A killed worker's messages come back only after
# 60 s *and* a 0.1 % maintenance draw, i.e. minutes later on a quiet queue (measured by the fault benchmark).
DEFAULTS = Profile(name="defaults")

SAFE = Profile(
    name="safe",
    broker_options={
        # A worker silent this long is declared dead and its unacked messages requeued. A live worker
        # heartbeats on every broker call and its delay-queue consumer polls ~1/s even while all threads are
        # busy; the longest gap seen here was 4 s, a 40-megapixel resize holding the GIL. 10 s keeps that
        # margin yet requeues within the harness's stall timeout (20-30 s), which the 60 s default would not.
        "heartbeat_timeout": 10_000,
        # 10 % of broker calls run maintenance (default 0.1 %): an idle worker process polls each queue about
        # once a second, so requeueing follows the heartbeat expiry within seconds, not minutes. It costs a
        # ZRANGEBYSCORE per maintained call plus a KEYS scan per dead worker, dropped once its jobs are back.
        "maintenance_chance": 100_000,
    },
    actor_options={
        # At most 3 attempts: transient faults (an SMTP hiccup) get two more tries, a poison job fails fast.
        "max_retries": 2,
        # Backoff doubles from min_backoff with up to 2x jitter (compute_backoff): ~1-2 s, then ~2-4 s,
        # instead of the default 15 s start, so a failed job settles within seconds.
        "min_backoff": 1_000,
        # Caps the jittered delay; with two retries it only matters if max_retries is raised.
        "max_backoff": 5_000,
        # TimeLimit interrupts a hung actor and frees its thread: 6x SMTP_TIMEOUT_S's default and ~35x a
        # 40-megapixel resize here (1.7 s), instead of the default 10 minutes.
        "time_limit": 60_000,
    },
)

PROFILES = {profile.name: profile for profile in (SAFE, DEFAULTS)}


def profile_for(settings: Settings) -> Profile:
    return PROFILES[settings.queue_config]
