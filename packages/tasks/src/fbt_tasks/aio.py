"""``run_job_async``: the awaitable twin of ``run_job`` for the asyncio-native runners.

Same envelope, same ledger event, same task logic: only the I/O around it is awaited.
"""

import asyncio
from typing import Any

from fbt_tasks.jobs import run_job


async def run_job_async(message: dict[str, Any], attempt: int = 1) -> Any:
    """Execute one job without blocking the event loop and record its completion, like ``run_job``.

    Exceptions propagate so the runner can retry. A first version: the sync path on a worker thread.
    """
    return await asyncio.to_thread(run_job, message, attempt)
