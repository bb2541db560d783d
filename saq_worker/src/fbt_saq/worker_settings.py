"""The settings the ``saq`` CLI starts a worker with: ``saq fbt_saq.worker_settings.settings``.

SAQ's docs: the CLI's argument names "a settings dictionary", which "can also be a callable returning the
settings dictionary": a callable, so the queue config is read from the environment in each process.
"""

from typing import Any

from saq import Queue

from fbt_saq.queue_configs import worker_kwargs
from fbt_saq.tasks import FUNCTIONS
from fbt_saq.wire import QUEUE_NAME
from fbt_tasks.registry import configured_settings
from fbt_tasks.settings import Settings


def worker_settings(config: Settings) -> dict[str, Any]:
    return {
        # SAQ's documented constructor: JSON (json.dumps/json.loads) is its default serializer.
        "queue": Queue.from_url(config.redis_url, name=QUEUE_NAME),
        "functions": FUNCTIONS,
        # One process's share of the slots: WORKER_THREADS jobs at once on its event loop.
        "concurrency": config.worker_threads,
        **worker_kwargs(config),
    }


def settings() -> dict[str, Any]:
    return worker_settings(configured_settings())
