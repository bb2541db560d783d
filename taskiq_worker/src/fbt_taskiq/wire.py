"""taskiq's message bytes, built by taskiq's own formatter for the sync enqueue path.

taskiq's ``kiq`` is a coroutine on redis.asyncio. ``Backend.enqueue`` is sync (called from the API's sync
routes on the threadpool), so it would need an event loop per call or a loop thread to hop to. Instead the
message is built by the broker's formatter (``broker.formatter.dumps``, JSON) and written with the one
command ``kick`` sends (``fbt_taskiq.redis_keys.push``).
"""

from taskiq import AsyncBroker, TaskiqMessage

from fbt_taskiq.tasks import task_name
from fbt_tasks.jobs import Job


def encode(broker: AsyncBroker, job: Job) -> bytes:
    """The bytes ``kiq`` would send for ``fbt.<kind>(job.to_message())`` with our id as taskiq's task id."""
    message = TaskiqMessage(
        task_id=job.id,
        task_name=task_name(job.kind),
        labels={},
        labels_types={},
        args=[job.to_message()],
        kwargs={},
    )
    return broker.formatter.dumps(message).message
