"""One taskiq task per kind, named ``fbt.<kind>``; each only awaits ``run_job_async`` with its attempt number."""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from taskiq import AsyncBroker, Context, TaskiqDepends

from fbt_tasks.aio import run_job_async
from fbt_tasks.jobs import TASKS

# SimpleRetryMiddleware counts the retries already made in this label of the re-sent message.
RETRIES_LABEL = "_retries"


def task_name(kind: str) -> str:
    return f"fbt.{kind}"


def attempt(context: Context) -> int:
    return int(context.message.labels.get(RETRIES_LABEL, 0)) + 1


def _task_function(kind: str) -> Callable[..., Awaitable[Any]]:
    async def task(message: dict[str, Any], context: Annotated[Context, TaskiqDepends()]) -> Any:
        return await run_job_async(message, attempt=attempt(context))

    task.__name__ = task.__qualname__ = kind
    task.__doc__ = f"taskiq task for fbt_tasks.jobs.TASKS[{kind!r}]."
    return task


def register(broker: AsyncBroker) -> None:
    """Register every kind's task on ``broker`` (taskiq's ``broker.task`` decorator, used as a call)."""
    for kind in TASKS:
        broker.task(task_name=task_name(kind))(_task_function(kind))
