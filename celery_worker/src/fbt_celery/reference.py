"""Celery's own minimal worker path: the fidelity reference the harness holds the Celery runner against.

``celery -A fbt_celery.reference worker`` finds ``app`` here; ``python -m fbt_celery.reference enqueue --n N``
enqueues N jobs with Celery's own client. Standard library, Celery and ``fbt_tasks.reference_task`` only
(``fbt_tasks.reference`` says why): no project code on this path but the task's two appends.

The harness passes everything as variables (``fbt_tasks.reference_task``): the broker URL, the Redis URL for
results, the Celery settings of the queue config in force (``CeleryRunner.reference``) and the queue.
"""

import os
import resource
import time
import uuid

from celery import Celery

from fbt_tasks import reference_task

# The options name the result backend "REDIS_URL" (fbt_celery.queue_configs.RESULTS_IN_REDIS); the
# harness passes that server's URL as FBT_REF_REDIS_URL. Not imported: queue_configs loads project code.
RESULT_BACKEND = "result_backend"


def _config() -> dict[str, object]:
    # Read with .get: importing the module without the harness's variables (a probe, a linter) must work.
    env = os.environ.get
    options = reference_task.options()
    if options.pop(RESULT_BACKEND, None):
        options[RESULT_BACKEND] = env(reference_task.REDIS_URL_ENV)
    return options | {
        "broker_url": env(reference_task.BROKER_URL_ENV),
        # JSON only, as the project: no pickle is ever accepted.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # A queue of its own (fbt_tasks.reference.REFERENCE_QUEUE): the worker consumes its default queue.
        "task_default_queue": env(reference_task.QUEUE_ENV, "celery"),
    }


app = Celery("fbt_reference", set_as_current=False)
app.conf.update(_config())


@app.task(name="ref.write_log")
def write_log(job_id: str, message: str, enqueued_at: float) -> None:
    reference_task.complete(job_id, message, enqueued_at)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def enqueue(n: int) -> None:
    """Enqueue ``n`` jobs with Celery's own client as fast as it goes; print the ids and CPU per enqueue."""
    ids = [uuid.uuid4().hex for _ in range(n)]
    # One-off set-up outside the measured loop: the app's task registry, its result backend and a pooled
    # broker connection, which the first apply_async would otherwise build.
    app.finalize()
    _ = app.backend
    with app.producer_or_acquire() as producer:
        producer.connection.ensure_connection(max_retries=3)
    # Celery's own client, as a user calls it: with a result backend, apply_async also subscribes to the
    # result channel (Celery's default; the project's API does not: fbt_celery.backend).
    start = _cpu_s()
    for index, job_id in enumerate(ids):
        write_log.apply_async(args=[job_id, f"reference #{index}", time.time()], task_id=job_id)
    cpu_s = _cpu_s() - start
    reference_task.emit(ids, cpu_s, n)
    app.close()


def main() -> None:
    enqueue(reference_task.enqueue_count("python -m fbt_celery.reference"))


if __name__ == "__main__":
    main()
