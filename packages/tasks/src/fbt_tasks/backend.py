"""What every runner implements, so the one API can talk to any of them."""

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

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

    def enqueue(self, job: Job, delay_s: float = 0.0) -> None:
        """Hand the job over durably (a PerRequest view schedules it on its request); raise BrokerUnavailable on
        failure.

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


@runtime_checkable
class PerRequest(Protocol):
    """A backend whose tasks run in the API after the response (FastAPI's BackgroundTasks): each request
    enqueues through a view of it bound to that request's own tasks. The API asks for the view whenever a
    backend offers one, so no route names a runner."""

    def for_request(self, background: BackgroundScheduler) -> Backend:
        """This backend, enqueueing onto ``background``: the request's tasks, run after its response."""
        ...
