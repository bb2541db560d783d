"""FastAPI BackgroundTasks with an ``async def`` task: Starlette awaits it on the API's event loop after the
response, instead of sending a sync task to its threadpool.

The task is ``fbt_tasks.aio.run_job_async``: SMTP and Redis are awaited, the log and ledger lines are written
on the loop, and the resize runs on a thread (see that module for why). Job states live in memory as in the
sync runner, whose backend this extends; only how a task is scheduled and awaited differs.
"""

import asyncio
import logging
from typing import Any

from fbt_inprocess.backend import InProcessBackend
from fbt_tasks.aio import run_job_async
from fbt_tasks.backend import BackgroundScheduler
from fbt_tasks.enqueue_cost import LIBRARY_ENQUEUE
from fbt_tasks.jobs import Job, JobState
from fbt_tasks.settings import Settings

log = logging.getLogger(__name__)


class InProcessAsyncBackend(InProcessBackend):
    name = "inprocess-async"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        # The equal slot budget: on the loop nothing else bounds how many tasks run at once (every accepted
        # request's task would start at once), so at most ``slots`` run and the rest wait here, in memory.
        self._slots = asyncio.Semaphore(settings.slots)

    def schedule(self, job: Job, background: BackgroundScheduler, delay_s: float = 0.0) -> None:
        if delay_s > 0:
            raise ValueError("BackgroundTasks cannot delay a task: it runs right after the response")
        self._set(job.id, JobState.queued)
        # An async callable: Starlette awaits it on the loop rather than handing it to the threadpool.
        message = job.to_message()
        with LIBRARY_ENQUEUE.timed():
            background.add_task(self._run_async, message)

    async def _run_async(self, message: dict[str, Any]) -> None:
        job_id = message["id"]
        async with self._slots:
            self._set(job_id, JobState.started)
            try:
                await run_job_async(message)
            except Exception:
                # No retry and no dead-letter queue, as with sync BackgroundTasks: logged, and the job is gone.
                log.exception("background task %s failed", job_id)
                self._set(job_id, JobState.failed)
            else:
                self._set(job_id, JobState.succeeded)

    def describe(self) -> dict[str, Any]:
        return {
            "runner": "FastAPI BackgroundTasks (Starlette), async def tasks",
            "executor": "the API's event loop; resize_image on a thread pool (fbt_tasks.aio)",
            "concurrent_tasks": self._settings.slots,
            "persistence": "none: queued tasks die with the API process",
            "retries": "none",
        }
