"""One RQ job function per task kind, ``fbt_rq.jobs.<kind>``; each only hands the message to ``run_job``.

RQ names a job by its function's import path and the worker imports it by that path, so each function is
bound as a module attribute under its kind (``fbt_rq.jobs.send_email``, ...), built in one loop.
"""

from collections.abc import Callable
from types import TracebackType
from typing import Any

from rq import get_current_job
from rq.exceptions import AbandonedJobError
from rq.job import Job as RQJob

from fbt_tasks.jobs import TASKS, run_job
from fbt_tasks.retry import is_transient

# Stored in each job's meta at enqueue, so the attempt number does not depend on the worker's QUEUE_CONFIG.
RETRY_MAX_META = "fbt_retry_max"


def current_attempt() -> int:
    """The running job's 1-based attempt; RQ counts ``retries_left`` down from ``Retry.max`` per retry."""
    job = get_current_job()
    if job is None:
        return 1
    retry_max: int | None = job.meta.get(RETRY_MAX_META)
    if retry_max is None or job.retries_left is None:
        return 1
    return retry_max - job.retries_left + 1


def stop_retrying_permanent_errors(
    job: RQJob,
    exc_type: type[BaseException],  # noqa: ARG001 (RQ's exception handler signature)
    exc_value: BaseException,
    traceback: TracebackType | None,  # noqa: ARG001 (RQ's exception handler signature)
) -> bool:
    """An RQ exception handler: a job that failed with an error that cannot pass is not retried.

    RQ calls exception handlers before it decides on a retry (``Job.should_retry``: retries left), so
    clearing ``retries_left`` here sends the job straight to the FailedJobRegistry. An abandoned job (its
    worker died) is RQ's own redelivery path and keeps its retries. Returns True: later handlers still run.
    """
    if not (isinstance(exc_value, AbandonedJobError) or is_transient(exc_value)):
        job.retries_left = 0
    return True


def _job_function(kind: str) -> Callable[[dict[str, Any]], Any]:
    def job_function(message: dict[str, Any]) -> Any:
        return run_job(message, attempt=current_attempt())

    job_function.__name__ = job_function.__qualname__ = kind
    job_function.__module__ = __name__
    job_function.__doc__ = f"RQ job for fbt_tasks.jobs.TASKS[{kind!r}]."
    return job_function


JOB_FUNCTIONS: dict[str, Callable[[dict[str, Any]], Any]] = {kind: _job_function(kind) for kind in TASKS}
globals().update(JOB_FUNCTIONS)
