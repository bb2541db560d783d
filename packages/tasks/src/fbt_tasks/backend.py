"""What every runner implements, so the one API can talk to any of them."""

from collections.abc import Callable
from typing import Any, Protocol

from fbt_tasks.jobs import Job, JobState
from fbt_tasks.settings import Settings


class BrokerUnavailable(RuntimeError):
    """The broker could not take the job; nothing was enqueued. The API answers 503."""


class DelayUnsupported(ValueError):
    """The runner cannot run a job after a countdown as it is deployed here; nothing was enqueued."""


class BackgroundScheduler(Protocol):
    """The part of Starlette's ``BackgroundTasks`` the in-process runner needs (typed without importing it)."""

    def add_task(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None: ...


class Backend(Protocol):
    name: str

    def __init__(self, settings: Settings) -> None: ...

    def enqueue(self, job: Job, background: BackgroundScheduler, delay_s: float = 0.0) -> None:
        """Hand the job over durably (or, for in-process, schedule it); raise BrokerUnavailable on failure.

        ``delay_s`` > 0 asks the library to run the job no sooner than that (Celery countdown, RQ
        ``enqueue_in``, Dramatiq ``delay``); the fault harness uses it, the API routes do not. A runner that
        cannot delay raises ValueError.
        """

    def status(self, job_id: str) -> JobState | None:
        """The job's state, or None if this backend has never heard of it."""

    def ping(self) -> bool:
        """Whether the broker answers, within the configured socket timeout."""

    def describe(self) -> dict[str, Any]:
        """The configuration in force, recorded in benchmark reports."""

    def close(self) -> None:
        """Release connections and pools; the backend is not used afterwards."""
