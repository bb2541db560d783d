"""One SAQ job function per task kind, registered as ``fbt.<kind>``; each awaits ``run_job_async``.

SAQ calls a job function with its context (``ctx["job"]`` is the running ``saq.Job``) and the job's kwargs;
ours is one kwarg, ``message``, the project's job envelope. Around the task the function does the two things
SAQ leaves to it: a heartbeat (SAQ's sweep treats a job untouched for ``Job.heartbeat`` seconds as abandoned;
"a heartbeat can be triggered manually within a job by calling await job.update()") and, for a job enqueued
with the transient-only rule, ending the attempts of an error no retry can fix (SAQ retries every error).
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from saq import Job as SaqJob

from fbt_saq.queue_configs import TRANSIENT_ONLY_META, heartbeat_every_s
from fbt_tasks.aio import run_job_async
from fbt_tasks.jobs import TASKS
from fbt_tasks.retry import is_transient

JobFunction = Callable[..., Awaitable[Any]]


def function_name(kind: str) -> str:
    return f"fbt.{kind}"


@contextlib.asynccontextmanager
async def heartbeat(job: SaqJob) -> AsyncIterator[None]:
    """Touch the job every heartbeat / 3 s while the block runs; stopped before SAQ finishes the job.

    Stopping here, not in an after_process hook, matters: SAQ's finish is written after the function
    returns, and a heartbeat landing after it would store the job as active again. The beating task starts
    only when the first beat is due (a timer until then): most jobs end long before, and a task per job
    created and cancelled unused cost the worker's loop more than the timer does.
    """
    every = heartbeat_every_s(job.heartbeat)
    if every is None:
        yield
        return

    async def beat() -> None:
        while True:
            await job.update()
            await asyncio.sleep(every)

    loop = asyncio.get_running_loop()
    beating: list[asyncio.Task[None]] = []
    first = loop.call_later(every, lambda: beating.append(loop.create_task(beat())))
    try:
        yield
    finally:
        first.cancel()
        for task in beating:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def stop_retrying_permanent_errors(job: SaqJob, error: BaseException) -> None:
    """SAQ retries while ``job.retries > job.attempts``: an error that cannot pass spends the rest at once."""
    if job.meta.get(TRANSIENT_ONLY_META) and not is_transient(error):
        job.retries = job.attempts


def _job_function(kind: str) -> JobFunction:
    async def job_function(ctx: dict[str, Any], *, message: dict[str, Any]) -> Any:
        job: SaqJob = ctx["job"]
        try:
            async with heartbeat(job):
                return await run_job_async(message, attempt=job.attempts)
        except Exception as error:
            stop_retrying_permanent_errors(job, error)
            raise

    job_function.__name__ = job_function.__qualname__ = function_name(kind)
    job_function.__doc__ = f"SAQ job for fbt_tasks.jobs.TASKS[{kind!r}]."
    return job_function


# SAQ's Worker takes (name, function) pairs; the name is what a job's `function` field says.
FUNCTIONS: list[tuple[str, JobFunction]] = [(function_name(kind), _job_function(kind)) for kind in TASKS]
