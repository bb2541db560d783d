"""What every runner implements, so the one API can talk to any of them."""

from collections.abc import Callable
from typing import Any, Protocol

from fbt_tasks.jobs import Job, JobState
from fbt_tasks.settings import Settings


class BrokerUnavailable(RuntimeError):
    """The broker could not take the job; nothing was enqueued. The API answers 503."""


class BackgroundScheduler(Protocol):
    """The part of Starlette's ``BackgroundTasks`` the in-process runner needs (typed without importing it)."""

    def add_task(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None: ...


class Backend(Protocol):
    name: str

    def __init__(self, settings: Settings) -> None: ...

    def enqueue(self, job: Job, background: BackgroundScheduler) -> None:
        """Hand the job over durably (or, for in-process, schedule it); raise BrokerUnavailable on failure."""

    def status(self, job_id: str) -> JobState | None:
        """The job's state, or None if this backend has never heard of it."""

    def ping(self) -> bool:
        """Whether the broker answers, within the configured socket timeout."""

    def describe(self) -> dict[str, Any]:
        """The configuration in force, recorded in benchmark reports."""


def load_backend(settings: Settings) -> Backend:
    """Instantiate the runner named by BACKEND, found through the ``fbt.backends`` entry points.

    Entry points keep dependencies pointing one way: runners depend on this package, never the reverse.
    """
    from importlib.metadata import entry_points

    found = entry_points(group="fbt.backends", name=settings.backend)
    if not found:
        raise RuntimeError(
            f"backend {settings.backend!r} is not installed (pip install fbt-{settings.backend})"
        )
    factory = next(iter(found)).load()
    return factory(settings)
