"""``fbt-worker-arq``: WORKER_PROCESSES copies of arq's own ``arq`` worker command, supervised.

Concurrency. One ``arq`` invocation is one process running up to ``max_jobs`` jobs at once as asyncio tasks
(arq has no option for more processes), so this starts WORKER_PROCESSES of them with max_jobs =
WORKER_THREADS (worker_settings), forwards SIGTERM/SIGINT to them and replaces one that dies
(``fbt_tasks.supervise``, shared with RQ). It supervises even a single process: an arq worker exits when a
Redis call fails (its poll loop does not catch connection errors), and the replacement reconnects.

Shutdown, as arq does it: SIGTERM/SIGINT stops taking jobs; with ``job_completion_wait`` (safe) running jobs
get that long to finish, then (or at once, arq's default) the rest are cancelled and put back on the queue.
"""

import logging
import os
import sys

from fbt_tasks.registry import configured_settings
from fbt_tasks.scripts import console_script
from fbt_tasks.settings import Settings
from fbt_tasks.supervise import supervise

log = logging.getLogger("fbt_arq.worker")

SETTINGS_PATH = "fbt_arq.worker_settings.WORKER_SETTINGS"
LOG_CONFIG_PATH = "fbt_arq.logs.LOG_CONFIG"


def worker_command(settings: Settings) -> list[str]:  # noqa: ARG001 (every runner's worker_command takes the settings)
    """``arq <worker settings>``: every option is in the settings it imports (the environment decides them)."""
    return [*console_script("arq", "arq"), SETTINGS_PATH, "--custom-log-dict", LOG_CONFIG_PATH]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s fbt-worker-arq: %(message)s")
    settings = configured_settings()
    command = worker_command(settings)
    shown = " ".join(["arq", *command[-3:]])
    log.info(
        "%d x `%s`, max_jobs %d (QUEUE_CONFIG=%s)",
        settings.worker_processes,
        shown,
        settings.worker_threads,
        settings.queue_config,
    )
    sys.exit(supervise(command, dict(os.environ), settings.worker_processes, name="arq worker"))


if __name__ == "__main__":
    main()
