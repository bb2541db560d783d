"""``fbt-worker-saq``: WORKER_PROCESSES copies of SAQ's own ``saq fbt_saq.worker_settings.settings`` command.

Concurrency. A SAQ worker runs ``concurrency`` jobs at once on one asyncio event loop; more processes use
more cores. ``saq --workers N`` forks N - 1 extra processes with multiprocessing but neither forwards
SIGTERM to them nor waits for them on its own shutdown (saq/runner.py), so a SIGTERM to it (what compose and
the devstack send) would leave N - 1 workers running. This process does what SAQ users do for that (saq
issue #278: "orchestrate multiple SAQ worker processes from a parent process"): it starts WORKER_PROCESSES
``saq`` processes, forwards SIGTERM/SIGINT to each once, waits for all and replaces one that dies
(``fbt_tasks.supervise``, shared with RQ and arq). With one process it execs ``saq``.
"""

import logging
import os
import sys

from fbt_tasks.registry import configured_settings
from fbt_tasks.scripts import console_script
from fbt_tasks.settings import Settings
from fbt_tasks.supervise import supervise

log = logging.getLogger("fbt_saq.worker")

SETTINGS = "fbt_saq.worker_settings.settings"


def worker_command(settings: Settings) -> list[str]:  # noqa: ARG001 (every runner's worker_command takes the settings)
    return [*console_script("saq", "saq"), SETTINGS]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s fbt-worker-saq: %(message)s")
    settings = configured_settings()
    command = worker_command(settings)
    log.info(
        "%d x `saq %s` (concurrency %d, QUEUE_CONFIG=%s)",
        settings.worker_processes,
        SETTINGS,
        settings.worker_threads,
        settings.queue_config,
    )
    if settings.worker_processes == 1:
        os.execv(command[0], command)  # noqa: S606 - the process becomes `saq` itself
    sys.exit(supervise(command, dict(os.environ), settings.worker_processes, name="saq worker"))


if __name__ == "__main__":
    main()
