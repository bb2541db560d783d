"""RQ's own minimal worker path, the RQ runner's fidelity reference (``fbt_tasks.reference``).

The workers are plain ``rq worker`` processes (``RQRunner.reference`` builds their argv) running
``write_log`` below, which only makes the two appends of ``fbt_tasks.reference_task``; ``python -m
fbt_rq.reference enqueue --n N`` queues N of them with RQ's own client. This module is also the workers'
``--config`` module: RQ imports it before the worker forks, as the project's worker imports its job code
(``fbt_rq.worker_settings``), so neither side pays an import per forked job. It therefore imports only the
standard library, rq/redis and ``fbt_tasks.reference_task``, and defines no UPPERCASE name at module level
(RQ reads every one of those from a config module as a setting).
"""

import os
import resource
import time
import uuid
from collections.abc import Sequence

from redis import Redis
from rq import Queue, Retry
from rq.serializers import JSONSerializer

from fbt_tasks import reference_task

# RQ stores a job's function by import path; ``__name__`` is "__main__" when run with ``python -m``.
job_function_path = "fbt_rq.reference.write_log"


def write_log(job_id: str, message: str, enqueued_at: float) -> None:
    """The reference job: the project's ``write_log`` appends, and nothing else."""
    reference_task.complete(job_id, message, enqueued_at)


def job_retry(options: dict[str, object]) -> Retry | None:
    """The queue config's ``Retry`` (``Retry.max``/``Retry.interval`` in the options), as the project enqueues."""
    retry_max = options.get("Retry.max")
    if not isinstance(retry_max, int):
        return None
    interval = options.get("Retry.interval", [])
    return Retry(max=retry_max, interval=list(interval) if isinstance(interval, list) else [])


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def enqueue(n: int) -> None:
    """Enqueue ``n`` reference jobs with RQ's client, JSON serializer; emit their ids and the CPU per enqueue."""
    connection = Redis.from_url(os.environ[reference_task.BROKER_URL_ENV])
    queue = Queue(os.environ[reference_task.QUEUE_ENV], connection=connection, serializer=JSONSerializer)
    retry = job_retry(reference_task.options())
    # Built before the clock, as the runner's pre-fill builds its jobs: ids are not the library's cost.
    ids = [uuid.uuid4().hex for _ in range(n)]
    before = _cpu_s()
    for index, job_id in enumerate(ids):
        queue.enqueue(job_function_path, job_id, f"drain #{index}", time.time(), job_id=job_id, retry=retry)
    cpu_s = _cpu_s() - before
    connection.close()
    reference_task.emit(ids, cpu_s, n)


def main(argv: Sequence[str] | None = None) -> None:
    enqueue(reference_task.enqueue_count("python -m fbt_rq.reference", None if argv is None else list(argv)))


if __name__ == "__main__":
    main()
