"""arq's own minimal worker and client: the arq runner's fidelity reference (``fbt_tasks.reference``).

``arq fbt_arq.reference.WorkerSettings`` runs arq's CLI with one job function that only calls
``fbt_tasks.reference_task.complete`` (the two appends of the project's ``write_log`` job), and
``python -m fbt_arq.reference enqueue --n N`` enqueues N jobs with arq's own ``ArqRedis.enqueue_job``. Both
use the same JSON serializer as the project's runner (``fbt_arq.wire``, copied: this module may load no project
code but ``reference_task``), and the worker takes the ``arq.worker.Worker`` options of the queue config in
force from the harness (``reference_task.options()``, from ``fbt_arq.worker_settings.worker_options``).

Imports: the standard library, arq, redis and ``fbt_tasks.reference_task`` only (tests/test_reference.py).
"""

import asyncio
import inspect
import os
import resource
import time
from typing import Any

from arq.connections import RedisSettings, create_pool
from arq.worker import Worker

from fbt_arq.wire import dumps, loads  # arq's JSON serializer as the project configures it (stdlib + arq)
from fbt_tasks.reference_task import BROKER_URL_ENV, QUEUE_ENV, complete, emit, enqueue_count, options

FUNCTION = "write_log"
# The options the wiring below sets; the harness's options may set any other ``Worker`` argument.
WIRED = frozenset({"functions", "queue_name", "redis_settings", "job_serializer", "job_deserializer"})


async def write_log(ctx: dict[str, Any], message: str, enqueued_at: float) -> None:
    """The reference's one job: the project's write_log appends, for arq's own job id."""
    complete(ctx["job_id"], message, enqueued_at)


def _redis_settings() -> RedisSettings:
    return RedisSettings.from_dsn(os.environ[BROKER_URL_ENV])


def worker_settings() -> dict[str, Any]:
    """The ``arq.worker.Worker`` arguments: the wiring, then the queue config's options as the harness passed them."""
    chosen = options()
    unknown = sorted((set(chosen) - set(inspect.signature(Worker).parameters)) | (set(chosen) & WIRED))
    if unknown:
        raise ValueError(f"not arq Worker options this reference takes: {unknown}")
    return {
        "functions": [write_log],
        "queue_name": os.environ[QUEUE_ENV],
        "redis_settings": _redis_settings(),
        "job_serializer": dumps,
        "job_deserializer": loads,
        **chosen,
    }


def __getattr__(name: str) -> Any:
    # ``arq fbt_arq.reference.WorkerSettings``: built when the CLI looks it up, so importing this module
    # reads no environment.
    if name == "WorkerSettings":
        return worker_settings()
    raise AttributeError(name)


async def enqueue(n: int) -> tuple[list[str], float]:
    """Enqueue ``n`` jobs with arq's client; return arq's job ids and the CPU seconds of the enqueue loop."""
    pool = await create_pool(
        _redis_settings(),
        job_serializer=dumps,
        job_deserializer=loads,
        default_queue_name=os.environ[QUEUE_ENV],
    )
    ids: list[str] = []
    try:
        before = resource.getrusage(resource.RUSAGE_SELF)
        for index in range(n):
            job = await pool.enqueue_job(FUNCTION, f"drain #{index}", time.time())
            if job is None:
                raise RuntimeError("arq refused a fresh job id")
            ids.append(job.job_id)
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        await pool.aclose()
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return ids, cpu_s


def main() -> None:
    n = enqueue_count("python -m fbt_arq.reference")
    ids, cpu_s = asyncio.run(enqueue(n))
    emit(ids, cpu_s, n)


if __name__ == "__main__":
    main()
