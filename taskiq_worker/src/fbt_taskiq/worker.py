"""``fbt-worker-taskiq``: taskiq's own ``taskiq worker`` command, with arguments derived from the settings.

Concurrency: ``--workers`` WORKER_PROCESSES child processes, each running up to ``--max-async-tasks``
WORKER_THREADS tasks at once on its event loop (taskiq's defaults: 2 and 100), and ``--max-prefetch 0`` (the
default, named): no delivery waits beyond those slots inside the process. The process execs ``taskiq``, so
a signal reaches taskiq's own process manager: SIGTERM/SIGINT stop listening, let running tasks finish, then
exit; it restarts a child that dies.
"""

import os
import sys

from fbt_taskiq.queue_configs import broker_class, queue_config_for
from fbt_tasks.registry import configured_settings
from fbt_tasks.scripts import console_script
from fbt_tasks.settings import Settings


def worker_options(settings: Settings) -> list[str]:
    """The ``taskiq worker`` options after the broker: the layout, prefetch and ack type (the fidelity
    reference's worker passes the same, ``TaskiqRunner.reference``)."""
    config = queue_config_for(settings)
    options = [
        "--workers",
        str(settings.worker_processes),
        "--max-async-tasks",
        str(settings.worker_threads),
    ]
    options += ["--max-prefetch", "0"]
    if broker_class(config) == "RedisStreamBroker":
        options += ["--ack-type", str(config.value("ack_type"))]
    return options


def worker_command(settings: Settings) -> list[str]:
    return [*console_script("taskiq", "taskiq"), "worker", "fbt_taskiq.app:broker", *worker_options(settings)]


def main() -> None:
    command = worker_command(configured_settings())
    print(f"fbt-worker-taskiq: {' '.join(['taskiq', *command[command.index('worker') :]])}", file=sys.stderr)
    os.execv(command[0], command)  # noqa: S606 - the process becomes `taskiq worker` itself


if __name__ == "__main__":
    main()
