"""taskiq's own minimal worker and client: the taskiq runner's fidelity reference (``fbt_tasks.reference``).

``taskiq worker fbt_taskiq.reference:broker`` runs taskiq's CLI over one async task that only calls
``fbt_tasks.reference_task.complete`` (the two appends of the project's ``write_log`` job), and
``python -m fbt_taskiq.reference enqueue --n N`` sends N of them with taskiq's own client (``await
task.kiq(...)``). The broker is the class of the project's queue config in force, built from the library options
the harness passes as JSON (``reference_task.options()``, from ``fbt_taskiq.queue_configs.library_options``):

- ``broker``: "RedisStreamBroker" or "ListQueueBroker" (the default when no options are given);
- ``RedisStreamBroker``: its keyword arguments (idle_timeout, consumer_id, xread_count, ...);
- ``RedisAsyncResultBackend``: its keyword arguments, when the project stores results (it does: /jobs/{id});
- ``SimpleRetryMiddleware``: its keyword arguments, ``types_of_exceptions`` as dotted names. Only the names this
  module can resolve without project code are kept (the standard library's and the libraries already loaded);
  the reference task never raises, so the filter never runs on its path.

JSON serializer for messages and results (taskiq-redis's result backend would pickle by default). The stream or
list is ``FBT_REF_QUEUE``: the project's runner and the reference never drain each other's messages.

Imports: the standard library, taskiq, taskiq-redis and ``fbt_tasks.reference_task`` only (tests/test_reference.py).
"""

import asyncio
import functools
import os
import resource
import sys
import time
import uuid
from collections.abc import Coroutine
from importlib import import_module
from typing import Any

from taskiq import AsyncBroker, AsyncTaskiqDecoratedTask, SimpleRetryMiddleware
from taskiq.serializers import JSONSerializer
from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend, RedisStreamBroker

from fbt_tasks.reference_task import (
    BROKER_URL_ENV,
    QUEUE_ENV,
    REDIS_URL_ENV,
    complete,
    emit,
    enqueue_count,
    options,
)

TASK_NAME = "fbt.reference.write_log"
# The registered task, as taskiq's decorator types it.
ReferenceTask = AsyncTaskiqDecoratedTask[[str, str, float], Coroutine[Any, Any, None]]
BROKERS: dict[str, type[ListQueueBroker] | type[RedisStreamBroker]] = {
    "ListQueueBroker": ListQueueBroker,
    "RedisStreamBroker": RedisStreamBroker,
}


async def write_log(job_id: str, message: str, enqueued_at: float) -> None:
    """The reference's one task: the project's write_log appends, on the loop as the project makes them."""
    complete(job_id, message, enqueued_at)


def _section(chosen: dict[str, object], name: str) -> dict[str, Any] | None:
    value = chosen.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"reference option {name!r} must be a JSON object, got {value!r}")
    return dict(value)


def _exception_types(names: list[str]) -> tuple[type[BaseException], ...]:
    """The exception classes behind ``names`` that resolve without project code (see the module's notes)."""
    found: list[type[BaseException]] = []
    for name in names:
        module, _, attr = name.rpartition(".")
        module = module or "builtins"
        if module not in sys.modules and module.partition(".")[0] not in sys.stdlib_module_names:
            continue  # the project's own errors, or a library this path does not load
        error = getattr(import_module(module), attr, None)
        if isinstance(error, type) and issubclass(error, BaseException):
            found.append(error)
    return tuple(found)


def build_broker() -> tuple[AsyncBroker, ReferenceTask]:
    """The broker the options name, its result backend and retry middleware, and the one task registered."""
    chosen = options()
    url = os.environ[BROKER_URL_ENV]
    queue = os.environ[QUEUE_ENV]
    name = chosen.get("broker", "ListQueueBroker")
    if name not in BROKERS:
        raise ValueError(f"reference broker must be one of {sorted(BROKERS)}, got {name!r}")
    broker: AsyncBroker
    if name == "RedisStreamBroker":
        broker = RedisStreamBroker(url, queue_name=queue, **(_section(chosen, "RedisStreamBroker") or {}))
    else:
        broker = ListQueueBroker(url, queue_name=queue)
    broker = broker.with_serializer(JSONSerializer())
    if (results := _section(chosen, "RedisAsyncResultBackend")) is not None:
        backend: RedisAsyncResultBackend[object] = RedisAsyncResultBackend(
            os.environ.get(REDIS_URL_ENV, url), serializer=JSONSerializer(), **results
        )
        broker = broker.with_result_backend(backend)
    if (retry := _section(chosen, "SimpleRetryMiddleware")) is not None:
        errors = _exception_types(list(retry.pop("types_of_exceptions", [])))
        broker = broker.with_middlewares(SimpleRetryMiddleware(types_of_exceptions=errors or None, **retry))
    task = broker.task(task_name=TASK_NAME)(write_log)
    return broker, task


@functools.cache
def _built() -> tuple[AsyncBroker, ReferenceTask]:
    return build_broker()


def __getattr__(name: str) -> Any:
    # ``taskiq worker fbt_taskiq.reference:broker`` looks ``broker`` up after the import: built then, so importing
    # this module reads no environment.
    if name == "broker":
        return _built()[0]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


async def enqueue(n: int) -> tuple[list[str], float]:
    """Send ``n`` tasks with taskiq's client; return the job ids passed and the CPU seconds of the send loop."""
    broker, task = _built()
    await broker.startup()
    # Built before the clock, as the runner's pre-fill builds its jobs: ids are not the library's cost.
    ids = [uuid.uuid4().hex for _ in range(n)]
    try:
        before = resource.getrusage(resource.RUSAGE_SELF)
        for index, job_id in enumerate(ids):
            await task.kiq(job_id, f"drain #{index}", time.time())
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        await broker.shutdown()
    return ids, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    n = enqueue_count("python -m fbt_taskiq.reference")
    ids, cpu_s = asyncio.run(enqueue(n))
    emit(ids, cpu_s, n)


if __name__ == "__main__":
    main()
