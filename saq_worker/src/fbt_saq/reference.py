"""SAQ's own minimal worker, the fidelity reference (``fbt_tasks.reference``): ``saq fbt_saq.reference.settings``.

What a SAQ user writes from its README: a settings dict for the ``saq`` CLI (a queue from
``Queue.from_url``, JSON, SAQ's default dump/load; one async function; a concurrency) and SAQ's own client,
``await queue.enqueue(...)``. The task is ``fbt_tasks.reference_task.complete``: the two appends of the project's
``write_log`` job. The library options of the project's queue config in force arrive as JSON
(``FBT_REF_OPTIONS``, built by ``SAQRunner.reference``): ``worker`` holds ``Worker`` keyword arguments
(concurrency, timers, dequeue_timeout, shutdown_grace_period_s), ``job`` the ``Job`` fields every job is
enqueued with (timeout, heartbeat, retries, ttl, retry_delay).

``python -m fbt_saq.reference enqueue --n N`` enqueues N jobs one after another, as fast as they go, and prints
``reference_task.emit``'s line; the job id is SAQ's job key. Before its clock starts it loads SAQ's sweep
script into Redis (``warm_sweep_script``), the state a stack whose workers have run is in.

Standard library, saq, redis and ``fbt_tasks.reference_task`` only: no other project code is on this path.
"""

import asyncio
import os
import resource
import time
import uuid
from typing import Any

from saq import Queue
from saq.queue.redis import RedisQueue

from fbt_tasks.reference_task import BROKER_URL_ENV, QUEUE_ENV, complete, emit, enqueue_count, options

FUNCTION = "write_log"


async def write_log(ctx: dict[str, Any], *, message: str, enqueued_at: float) -> None:
    """The reference job: SAQ's job key is the job id."""
    complete(ctx["job"].key, message, enqueued_at)


def _queue() -> Queue:
    return Queue.from_url(os.environ[BROKER_URL_ENV], name=os.environ[QUEUE_ENV])


def _section(name: str) -> dict[str, Any]:
    value = options().get(name, {})
    if not isinstance(value, dict):
        raise ValueError(f"reference option {name!r} must be a JSON object, got {value!r}")
    return value


def settings() -> dict[str, Any]:
    """The ``saq`` CLI's settings dict (a callable, so each process reads the environment when it starts)."""
    return {"queue": _queue(), "functions": [(FUNCTION, write_log)], **_section("worker")}


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def warm_sweep_script(queue: Queue) -> None:
    """Load SAQ's sweep script into Redis's script cache, as the project's workers have loaded it in a running
    stack (the same script, so the same SHA), and leave no sweep lock behind.

    On a fresh Redis a starting worker's first sweep pass pays NOSCRIPT and SCRIPT LOAD round trips, lands
    after its slots' BLMOVEs, and sweeps jobs dequeued but not yet marked active (tobymao/saq#277): with
    attempts left they run twice. Not part of any measured window.
    """
    if isinstance(queue, RedisQueue):
        await queue.sweep(lock=1)
        await queue.redis.delete(queue.namespace("sweep"))


async def enqueue(n: int) -> tuple[list[str], float]:
    """Enqueue ``n`` jobs with SAQ's client; the ids and the CPU seconds of the enqueue loop alone."""
    queue, fields = _queue(), _section("job")
    ids = [uuid.uuid4().hex for _ in range(n)]
    messages = [f"drain #{index}" for index in range(n)]
    await queue.connect()
    try:
        await warm_sweep_script(queue)
        before = _cpu_s()
        for job_id, message in zip(ids, messages, strict=True):
            job = await queue.enqueue(
                FUNCTION, key=job_id, message=message, enqueued_at=time.time(), **fields
            )
            if job is None:  # SAQ refuses a key still unfinished: never expected for a fresh uuid4
                raise RuntimeError(f"SAQ refused job {job_id}")
        cpu_s = _cpu_s() - before
    finally:
        await queue.disconnect()
    return ids, cpu_s


def main() -> None:
    n = enqueue_count("python -m fbt_saq.reference")
    ids, cpu_s = asyncio.run(enqueue(n))
    emit(ids, cpu_s, n)


if __name__ == "__main__":
    main()
