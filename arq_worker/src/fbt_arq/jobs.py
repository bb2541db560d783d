"""One arq job function per task kind, registered as ``fbt.<kind>``; each only awaits ``run_job_async``.

arq calls a job function as a coroutine with its context first (``ctx["job_try"]`` is the 1-based try, counted
by arq in Redis, so a killed worker's job comes back as try 2) and the enqueued arguments after it: here the
one message dict. arq retries nothing by itself but a job that raises ``Retry``; the queue config decides
which errors become one (``QueueConfig.retries_on``) and how long each waits.
"""

from typing import Any, cast

from arq.typing import WorkerCoroutine
from arq.worker import Function, Retry, func

from fbt_arq.queue_configs import max_tries, retry_defers_s
from fbt_arq.wire import FUNCTION_PREFIX
from fbt_tasks.aio import run_job_async
from fbt_tasks.jobs import TASKS
from fbt_tasks.retry import resolve
from fbt_tasks.runner import QueueConfig


def function_name(kind: str) -> str:
    return f"{FUNCTION_PREFIX}{kind}"


def _job_coroutine(kind: str, config: QueueConfig) -> WorkerCoroutine:
    retry_on = resolve(config.retries_on)
    defers, tries = retry_defers_s(config), max_tries(config)

    async def job(ctx: dict[Any, Any], message: dict[str, Any]) -> Any:
        attempt = int(ctx["job_try"])
        try:
            return await run_job_async(message, attempt=attempt)
        except retry_on as exc:
            # The last attempt fails with the task's own error, so arq's result records it rather than
            # "max retries exceeded" one pickup later.
            if attempt >= tries or attempt > len(defers):
                raise
            raise Retry(defer=defers[attempt - 1]) from exc

    job.__name__ = job.__qualname__ = kind
    job.__doc__ = f"arq job for fbt_tasks.jobs.TASKS[{kind!r}]."
    # arq types a job function as taking *args; ours takes exactly the one message arq passes.
    return cast(WorkerCoroutine, job)


def job_functions(config: QueueConfig) -> list[Function]:
    """The worker's functions, one per kind, retrying as ``config`` says."""
    return [func(_job_coroutine(kind, config), name=function_name(kind)) for kind in TASKS]
