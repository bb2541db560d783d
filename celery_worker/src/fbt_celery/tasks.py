"""One Celery task per kind in ``fbt_tasks.jobs.TASKS``, named ``fbt.<kind>``: wiring only, no task logic."""

from typing import Any

from celery import Celery, Task

from fbt_celery.queue_configs import TASK, queue_config_for
from fbt_tasks.jobs import TASKS, run_job
from fbt_tasks.retry import resolve
from fbt_tasks.settings import Settings


def task_name(kind: str) -> str:
    return f"fbt.{kind}"


def retry_options(settings: Settings) -> dict[str, Any]:
    """Celery's autoretry task options from the queue config; out of the box Celery never retries a task.

    The queue config keeps them JSON-safe for the report, so ``autoretry_for`` holds dotted exception
    names (fbt_tasks.retry); Celery wants the classes.
    """
    options = queue_config_for(settings).options(TASK)
    if "autoretry_for" in options:
        options["autoretry_for"] = resolve(options["autoretry_for"])
    return options


def _run(task: Task, message: dict[str, Any]) -> Any:
    # request.retries counts Celery retries (0 on the first run). A broker redelivery after a lost worker
    # re-sends the same message, so Celery reports it as the same attempt.
    return run_job(message, attempt=task.request.retries + 1)


def register_tasks(app: Celery, settings: Settings) -> None:
    """Register ``fbt.<kind>`` for every kind on ``app`` (find them in ``app.tasks`` by that name)."""
    options = retry_options(settings)
    for kind in TASKS:
        app.task(_run, name=task_name(kind), bind=True, **options)
