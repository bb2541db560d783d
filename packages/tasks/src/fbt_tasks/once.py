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

The protocol is written once, as a generator that performs no I/O (``_guard``): it yields the Redis commands,
sleeps and the effect it needs, and is sent back each result (or thrown each error). ``run_once`` drives it
with redis-py's blocking client, ``run_once_async`` (``fbt_tasks.aio``) with its asyncio client; only the
drivers know how to wait.
"""

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any

import redis
from redis.asyncio import Redis as AsyncRedis

# Sent records outlive any plausible redelivery (broker visibility timeouts are minutes, retries seconds).
DONE_TTL_S = 7 * 24 * 3600
POLL_S = 0.2


class AlreadyInFlight(RuntimeError):
    """Another attempt still holds the lease after we waited a full lease period; retry later."""


@dataclass(frozen=True, slots=True)
class Command:
    """One Redis command, by the method name redis-py's blocking and asyncio clients share."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


class Effect:
    """Run the side effect now; its error, thrown back in, ends the protocol (releasing the lease)."""


EFFECT = Effect()
Step = Command | Sleep | Effect
Guard = Generator[Step, Any, bool]


def _guard(key: str, lease_s: float) -> Guard:
    """The send-once protocol for ``key``; returns False if the effect was skipped as already done."""
    lease_key, done_key = f"fbt:once:lease:{key}", f"fbt:once:done:{key}"
    deadline = time.monotonic() + lease_s + 1
    token = f"{time.time_ns()}"
    while not (yield Command("set", (lease_key, token), {"nx": True, "px": int(lease_s * 1000)})):
        if (yield Command("exists", (done_key,))):
            return False
        if time.monotonic() > deadline:
            raise AlreadyInFlight(f"{key}: lease still held after {lease_s:.0f} s")
        yield Sleep(POLL_S)
    leased_until = time.monotonic() + lease_s
    try:
        done = yield Command("exists", (done_key,))
        if not done:
            yield EFFECT
            yield from _record_done(done_key, until=leased_until)
    except GeneratorExit:
        # The driver was cancelled or interrupted mid-step and can send no more commands: the lease expires.
        raise
    except BaseException:
        yield from _release(lease_key, token)
        raise
    yield from _release(lease_key, token)
    return not done


def _release(lease_key: str, token: str) -> Generator[Step, Any, None]:
    # Release only our own lease: after a very slow effect it may have expired and been taken over.
    if (yield Command("get", (lease_key,))) == token.encode():
        yield Command("delete", (lease_key,))


def _record_done(done_key: str, *, until: float) -> Generator[Step, Any, None]:
    """Write the done record, retrying through a Redis blip while our lease still holds off other attempts.

    The effect already happened: failing here would fail the task, and its retry would repeat the effect
    (measured: a Redis restart right after an SMTP "250" sent that email twice). Past the lease, give up.
    """
    while True:
        try:
            yield Command("set", (done_key, "1"), {"ex": DONE_TTL_S})
            return
        except redis.RedisError:
            if time.monotonic() + POLL_S >= until:
                raise
            yield Sleep(POLL_S)


class Stepper:
    """Walks a guard for a driver: ``step`` is what to do next (None once finished), ``result`` the outcome."""

    def __init__(self, steps: Guard) -> None:
        self._steps = steps
        self.result = False
        self.step: Step | None = None
        self._resume(lambda: next(steps))

    def reply(self, value: Any) -> None:
        """The step succeeded with ``value`` (a Redis reply; None for a sleep or the effect)."""
        self._resume(lambda: self._steps.send(value))

    def fail(self, error: Exception) -> None:
        """The step raised ``error``: the protocol decides whether it ends the attempt."""
        self._resume(lambda: self._steps.throw(error))

    def settle(self, perform: Callable[[], Any]) -> None:
        """Perform the step now (a blocking driver) and resume the protocol with its reply or its error."""
        try:
            value = perform()
        except Exception as exc:
            self.fail(exc)
        else:
            self.reply(value)

    def _resume(self, advance: Callable[[], Step]) -> None:
        try:
            self.step = advance()
        except StopIteration as finished:
            self.step, self.result = None, finished.value


@lru_cache
def _client(url: str, socket_timeout_s: float) -> redis.Redis:
    # redis-py resets its pool in a forked child, so one cached client per process is fork-safe.
    return redis.Redis.from_url(url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s)


def run_once(
    key: str, effect: Callable[[], None], *, redis_url: str, lease_s: float, socket_timeout_s: float = 2.0
) -> bool:
    """Run ``effect`` unless it already succeeded for ``key``; return False if it was skipped as a duplicate."""
    client = _client(redis_url, socket_timeout_s)
    guard = Stepper(_guard(key, lease_s))
    while (step := guard.step) is not None:
        guard.settle(partial(_perform, client, step, effect))
    return guard.result


def _perform(client: redis.Redis, step: Step, effect: Callable[[], None]) -> Any:
    if isinstance(step, Command):
        return getattr(client, step.method)(*step.args, **step.kwargs)
    return time.sleep(step.seconds) if isinstance(step, Sleep) else effect()


async def run_once_async(
    key: str,
    effect: Callable[[], Awaitable[None]],
    *,
    redis_url: str,
    lease_s: float,
    socket_timeout_s: float = 2.0,
) -> bool:
    """``run_once`` for an awaitable effect, on redis-py's asyncio client: the same protocol, awaited."""
    client = _async_client(redis_url, socket_timeout_s)
    guard = Stepper(_guard(key, lease_s))
    while (step := guard.step) is not None:
        try:
            reply = await _perform_async(client, step, effect)
        except Exception as exc:
            guard.fail(exc)
        else:
            guard.reply(reply)
    return guard.result


async def _perform_async(client: AsyncRedis, step: Step, effect: Callable[[], Awaitable[None]]) -> Any:
    if isinstance(step, Command):
        return await getattr(client, step.method)(*step.args, **step.kwargs)
    return await (asyncio.sleep(step.seconds) if isinstance(step, Sleep) else effect())


# An asyncio client's connections belong to the loop that opened them, so each loop gets its own clients
# (a test's asyncio.run, a worker's loop); they go when the loop does.
_LoopClients = dict[tuple[str, float], AsyncRedis]
_ASYNC_CLIENTS: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients]" = (
    weakref.WeakKeyDictionary()
)


def _async_client(url: str, socket_timeout_s: float) -> AsyncRedis:
    clients = _ASYNC_CLIENTS.setdefault(asyncio.get_running_loop(), {})
    client = clients.get((url, socket_timeout_s))
    if client is None:
        client = clients[(url, socket_timeout_s)] = AsyncRedis.from_url(
            url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s
        )
    return client
