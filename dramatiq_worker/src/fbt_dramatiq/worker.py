"""``fbt-worker-dramatiq``: become Dramatiq's own documented CLI, with concurrency from the settings.

    dramatiq fbt_dramatiq.global_broker --processes WORKER_PROCESSES --threads WORKER_THREADS

The process execs, so the command a user sees in ``ps`` is the documented one and signals reach the
Dramatiq main process directly: on SIGTERM (or Ctrl-C) it forwards SIGTERM to its worker processes, which
stop fetching, requeue the messages they prefetched, and let running actors finish (up to the CLI's
``--worker-shutdown-timeout``, 10 minutes by default) before exiting.
"""

import os
import sys

from fbt_tasks.registry import configured_settings
from fbt_tasks.scripts import script_path
from fbt_tasks.settings import Settings

BROKER_MODULE = "fbt_dramatiq.global_broker"


def worker_argv(settings: Settings) -> list[str]:
    """The CLI arguments: WORKER_PROCESSES processes x WORKER_THREADS threads = the runner's slots."""
    return [
        "dramatiq",
        BROKER_MODULE,
        "--processes",
        str(settings.worker_processes),
        "--threads",
        str(settings.worker_threads),
    ]


def main() -> None:
    argv = worker_argv(configured_settings())  # invalid settings fail here, before anything starts
    executable = script_path("dramatiq")
    print(f"fbt-worker-dramatiq: exec {' '.join(argv)}", file=sys.stderr, flush=True)
    if executable is None:
        # Same CLI through the module entry point, for environments installed without console scripts.
        os.execv(sys.executable, [sys.executable, "-m", *argv])  # noqa: S606 (fixed argv, no shell wanted)
    os.execv(executable, argv)  # noqa: S606 (fixed argv, no shell wanted)


if __name__ == "__main__":
    main()
