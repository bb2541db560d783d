"""``run_job_async``: the awaitable twin of ``run_job`` for the asyncio-native runners.

Same envelope, same ledger event (``jobs.Recorded``), same task logic: only the I/O around it is awaited.

- ``send_email``: ``mailer.send_email_async``, the same message and send-once guard over aiosmtplib and
  redis' asyncio client.
- ``write_log``, ``notify``: the sync tasks themselves, called on the loop. Each is one O_APPEND write of a
  line to a local file (``lines``): the page cache takes it without waiting on a device or a peer, and a hop
  to a thread and back would cost the loop more than the write. The ledger event is the same write.
- ``resize_image``: the sync task on a worker thread. Pillow releases the GIL while it decodes, resamples and
  encodes, so the thread uses another core while the loop keeps serving; what stays on the GIL (the Python
  around those calls) still slows the loop a little, and cpu-heavy measures that. A process pool would free
  the loop entirely but pickles every call's arguments (the project uses no pickle) and puts child processes
  in every API and worker that the runner would have to reap.
"""

import asyncio
import functools
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fbt_tasks.images import resize_image
from fbt_tasks.jobs import Recorded
from fbt_tasks.logfile import notify, write_log
from fbt_tasks.mailer import send_email_async
from fbt_tasks.settings import get_settings

AsyncTask = Callable[..., Awaitable[Any]]


@functools.cache
def _threads(pid: int) -> ThreadPoolExecutor:  # noqa: ARG001 (the cache key: one pool per process)
    # One pool per process (threads do not survive a fork), as wide as the whole slot budget: the runner's own
    # concurrency limit, never this pool, is what bounds how many resizes run at once. Threads start on demand.
    return ThreadPoolExecutor(max_workers=get_settings().slots, thread_name_prefix="fbt-task")


def on_thread(task: Callable[..., Any]) -> AsyncTask:
    """``task`` run on this process's task threads, awaited from the loop."""

    async def run(**payload: Any) -> Any:
        call = functools.partial(task, **payload)
        return await asyncio.get_running_loop().run_in_executor(_threads(os.getpid()), call)

    return run


def on_loop(task: Callable[..., Any]) -> AsyncTask:
    """``task`` called directly on the loop: for work shorter than a thread hop (see the module's notes)."""

    async def run(**payload: Any) -> Any:
        return task(**payload)

    return run


ASYNC_TASKS: dict[str, AsyncTask] = {
    "send_email": send_email_async,
    "write_log": on_loop(write_log),
    "notify": on_loop(notify),
    "resize_image": on_thread(resize_image),
}


async def run_job_async(message: dict[str, Any], attempt: int = 1) -> Any:
    """Execute one job without blocking the event loop and record its completion, like ``run_job``.

    Exceptions propagate so the runner can retry; the ledger event is the one ``run_job`` records.
    """
    with Recorded(message, attempt) as recorded:
        return recorded.returned(await ASYNC_TASKS[message["kind"]](**message["payload"]))
