"""One Celery task per kind in ``fbt_tasks.jobs.TASKS``, named ``fbt.<kind>``: wiring only, no task logic."""

from typing import Any

from celery import Celery, Task

from fbt_tasks.jobs import TASKS, run_job
from fbt_tasks.settings import Settings

# Three attempts in all: the first run plus two retries, 1 s and then 2 s later (backoff 1 s, doubling,
# never more than RETRY_BACKOFF_MAX_S).
MAX_RETRIES = 2
RETRY_BACKOFF_S = 1
RETRY_BACKOFF_MAX_S = 4


def task_name(kind: str) -> str:
    return f"fbt.{kind}"


def retry_options(settings: Settings) -> dict[str, Any]:
    """Celery's autoretry options for the safe profile; out of the box Celery never retries a task."""
    if settings.queue_config != "safe":
        return {}
    return {
        # Any failure of ours is worth another try (SMTP or Redis hiccup); a permanent one just fails 3 times.
        "autoretry_for": (Exception,),
        "max_retries": MAX_RETRIES,
        # Exponential backoff from 1 s (retry_backoff=N starts at N s), capped at RETRY_BACKOFF_MAX_S.
        "retry_backoff": RETRY_BACKOFF_S,
        "retry_backoff_max": RETRY_BACKOFF_MAX_S,
        # Off, unlike Celery's default: full jitter draws the countdown from [0, backoff], so a retry can run
        # at once, racing the RETRY state Celery stores only *after* publishing the retry. In trials a stale
        # RETRY landed after the last attempt's FAILURE and /jobs said "queued" for good. A fixed backoff
        # gives that write a second's head start.
        "retry_jitter": False,
    }


def _run(task: Task, message: dict[str, Any]) -> Any:
    # request.retries counts Celery retries (0 on the first run). A broker redelivery after a lost worker
    # re-sends the same message, so Celery reports it as the same attempt.
    return run_job(message, attempt=task.request.retries + 1)


def register_tasks(app: Celery, settings: Settings) -> None:
    """Register ``fbt.<kind>`` for every kind on ``app`` (find them in ``app.tasks`` by that name)."""
    options = retry_options(settings)
    for kind in TASKS:
        app.task(_run, name=task_name(kind), bind=True, **options)
