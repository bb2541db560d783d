"""``fbt-worker-celery``: exec Celery's own documented worker command, with arguments derived from settings.

exec, not a subprocess: the process *is* ``celery worker``, so SIGTERM reaches Celery directly and gets
its documented warm shutdown (stop taking messages, finish the running tasks, exit; in the safe queue config
unacked messages go back to the queue). Further SIGTERMs are ignored; SIGQUIT or a second Ctrl-C forces a
cold shutdown.
"""

import os
import sys

from fbt_tasks.registry import configured_settings
from fbt_tasks.scripts import console_script
from fbt_tasks.settings import Settings

# Workers of this project name themselves fbt-celery-<pid>@<host>: unique per process on a host (Celery
# warns about duplicate node names), and recognisable by the health check among other apps' workers.
NODE_PREFIX = "fbt-celery"


def worker_argv(settings: Settings) -> list[str]:
    """The ``celery worker`` command line for these settings (without the executable)."""
    return [
        "-A",
        "fbt_celery.app",
        "worker",
        # Prefork: one OS process per slot, so the CPU-bound resize runs in parallel despite the GIL, and a
        # child that dies (SIGKILL, OOM) is noticed by the parent, which rejects/requeues its task.
        "--pool",
        "prefork",
        # docs/CONTRACTS.md: Celery spends its slots (processes x threads) as prefork processes.
        "--concurrency",
        str(settings.slots),
        "--hostname",
        f"{NODE_PREFIX}-{os.getpid()}@%h",
        # Gossip, mingle and event heartbeats stay on: Celery's docs do not recommend turning them off, and
        # mingle costs only a second at start-up.
    ]


def main() -> None:
    settings = configured_settings()
    command = [*console_script("celery", "celery"), *worker_argv(settings)]
    print(" ".join(command), file=sys.stderr, flush=True)
    os.execv(command[0], command)  # noqa: S606  (fixed argv, no shell)


if __name__ == "__main__":
    main()
