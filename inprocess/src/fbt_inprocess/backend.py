"""FastAPI BackgroundTasks, exactly as the tutorial uses them: the task runs in the API process after the
response is sent. Sync tasks go to Starlette's threadpool (anyio's limiter, 40 tokens by default).

Nothing is persisted: a job lives only in this process's memory, so a crash or restart loses every task
not yet finished. The benchmark's fault scenarios measure exactly that.
"""

import logging
import threading
from collections import OrderedDict
from typing import Any

import anyio.to_thread

from fbt_tasks.backend import BackgroundScheduler
from fbt_tasks.enqueue_cost import LIBRARY_ENQUEUE
from fbt_tasks.jobs import Job, JobState, run_job
from fbt_tasks.settings import Settings

log = logging.getLogger(__name__)

# Job states live in memory; cap them so a long-running API does not grow without bound.
MAX_TRACKED_JOBS = 100_000


class InProcessBackend:
    name = "inprocess"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._states: OrderedDict[str, JobState] = OrderedDict()
        self._lock = threading.Lock()

    def for_request(self, background: BackgroundScheduler) -> "RequestTasks":
        return RequestTasks(self, background)

    def enqueue(self, job: Job, delay_s: float = 0.0) -> None:  # noqa: ARG002 (the Backend protocol's signature)
        raise TypeError("BackgroundTasks run after a response: enqueue through for_request(background)")

    def schedule(self, job: Job, background: BackgroundScheduler, delay_s: float = 0.0) -> None:
        """Add the job to ``background``, the request's tasks, which Starlette runs after the response."""
        if delay_s > 0:
            raise ValueError("BackgroundTasks cannot delay a task: it runs right after the response")
        self._set(job.id, JobState.queued)
        message = job.to_message()
        with LIBRARY_ENQUEUE.timed():
            background.add_task(self._run, message)

    def _run(self, message: dict[str, Any]) -> None:
        job_id = message["id"]
        self._set(job_id, JobState.started)
        try:
            run_job(message)
        except Exception:
            # BackgroundTasks have no retry and no dead-letter queue: the failure is logged and the job is gone.
            log.exception("background task %s failed", job_id)
            self._set(job_id, JobState.failed)
        else:
            self._set(job_id, JobState.succeeded)

    def _set(self, job_id: str, state: JobState) -> None:
        with self._lock:
            self._states[job_id] = state
            self._states.move_to_end(job_id)
            while len(self._states) > MAX_TRACKED_JOBS:
                self._states.popitem(last=False)

    def status(self, job_id: str) -> JobState | None:
        with self._lock:
            return self._states.get(job_id)

    def ping(self) -> bool:
        return True  # there is no broker to lose

    def describe(self) -> dict[str, Any]:
        return {
            "runner": "FastAPI BackgroundTasks (Starlette)",
            "executor": "anyio threadpool in the API process",
            "threadpool_tokens": anyio.to_thread.current_default_thread_limiter().total_tokens
            if self._settings.api_threadpool == 0
            else self._settings.api_threadpool,
            "persistence": "none: queued tasks die with the API process",
            "retries": "none",
        }

    def close(self) -> None:
        pass  # no connections or pools: the job states go with the process


class RequestTasks:
    """The in-process backend as one request sees it: its enqueue adds to that request's BackgroundTasks."""

    __slots__ = ("_background", "_shared")

    def __init__(self, shared: InProcessBackend, background: BackgroundScheduler) -> None:
        self._shared, self._background = shared, background

    @property
    def name(self) -> str:
        return self._shared.name

    def enqueue(self, job: Job, delay_s: float = 0.0) -> None:
        self._shared.schedule(job, self._background, delay_s)

    def status(self, job_id: str) -> JobState | None:
        return self._shared.status(job_id)

    def ping(self) -> bool:
        return self._shared.ping()

    def describe(self) -> dict[str, Any]:
        return self._shared.describe()

    def close(self) -> None:
        """The shared backend outlives the request: the app's lifespan closes it."""
