"""Deliver a side effect at most once per key under at-least-once delivery, without losing it.

Two Redis keys per effect:
- a short *lease* (``SET NX PX``) held while the effect is in progress. It expires by itself, so a worker
  SIGKILLed mid-send cannot hold it forever (a lease released only on exception would: the redelivered
  task would find it, skip, and silently lose the email);
- a durable *done* record, written only after the effect succeeded (for email: the SMTP server accepted it).

A redelivered task that finds the done record skips. One that finds a live lease but no done record waits
for the lease to expire or the record to appear, then proceeds: it never drops.

The window that remains: a crash after the effect happened but before the done record was written. Then
the effect runs twice; for email the stable Message-ID header lets receivers drop the copy.
"""

import time
from collections.abc import Callable
from functools import lru_cache

import redis

# Sent records outlive any plausible redelivery (broker visibility timeouts are minutes, retries seconds).
DONE_TTL_S = 7 * 24 * 3600
POLL_S = 0.2


@lru_cache
def _client(url: str, socket_timeout_s: float) -> redis.Redis:
    # redis-py resets its pool in a forked child, so one cached client per process is fork-safe.
    return redis.Redis.from_url(url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s)


class AlreadyInFlight(RuntimeError):
    """Another attempt still holds the lease after we waited a full lease period; retry later."""


def run_once(
    key: str, effect: Callable[[], None], *, redis_url: str, lease_s: float, socket_timeout_s: float = 2.0
) -> bool:
    """Run ``effect`` unless it already succeeded for ``key``; return False if it was skipped as a duplicate."""
    client = _client(redis_url, socket_timeout_s)
    lease_key, done_key = f"fbt:once:lease:{key}", f"fbt:once:done:{key}"
    deadline = time.monotonic() + lease_s + 1
    token = f"{time.time_ns()}"
    while not client.set(lease_key, token, nx=True, px=int(lease_s * 1000)):
        if client.exists(done_key):
            return False
        if time.monotonic() > deadline:
            raise AlreadyInFlight(f"{key}: lease still held after {lease_s:.0f} s")
        time.sleep(POLL_S)
    leased_until = time.monotonic() + lease_s
    try:
        if client.exists(done_key):
            return False
        effect()
        _record_done(client, done_key, until=leased_until)
        return True
    finally:
        # Release only our own lease: after a very slow effect it may have expired and been taken over.
        if client.get(lease_key) == token.encode():
            client.delete(lease_key)


def _record_done(client: redis.Redis, done_key: str, *, until: float) -> None:
    """Write the done record, retrying through a Redis blip while our lease still holds off other attempts.

    The effect already happened: failing here would fail the task, and its retry would repeat the effect
    (measured: a Redis restart right after an SMTP "250" sent that email twice). Past the lease, give up.
    """
    while True:
        try:
            client.set(done_key, "1", ex=DONE_TTL_S)
            return
        except redis.RedisError:
            if time.monotonic() + POLL_S >= until:
                raise
            time.sleep(POLL_S)
