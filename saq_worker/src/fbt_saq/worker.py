"""``fbt-worker-saq``: WORKER_PROCESSES copies of SAQ's own ``saq fbt_saq.worker_settings.settings`` command.

Concurrency. A SAQ worker runs ``concurrency`` jobs at once on one asyncio event loop; more processes use
more cores. ``saq --workers N`` forks N - 1 extra processes with multiprocessing but neither forwards
SIGTERM to them nor waits for them on its own shutdown (saq/runner.py), so a SIGTERM to it (what compose and
the devstack send) would leave N - 1 workers running. This process does what SAQ users do for that (saq
issue #278: "orchestrate multiple SAQ worker processes from a parent process"): it starts WORKER_PROCESSES
``saq`` processes, forwards SIGTERM/SIGINT to each once, and waits for all. With one process it execs ``saq``.
If one exits on its own, the others are stopped too and this process exits non-zero, so the supervisor
above it (compose's restart policy, the devstack) sees a failed worker instead of a silently smaller one.
"""

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from fbt_tasks.settings import Settings, get_settings

log = logging.getLogger("fbt_saq.worker")

SETTINGS = "fbt_saq.worker_settings.settings"
POLL_S = 0.2
PR_SET_PDEATHSIG = 1


def saq_cli() -> list[str]:
    """The ``saq`` console script installed next to this interpreter, or its module form."""
    script = Path(sys.executable).parent / "saq"
    return [str(script)] if script.exists() else [sys.executable, "-m", "saq"]


def worker_command(settings: Settings) -> list[str]:
    return [*saq_cli(), SETTINGS]


def _die_with_supervisor(supervisor_pid: int) -> Callable[[], None]:
    """Ask Linux to SIGTERM the worker if this supervisor dies, even by SIGKILL: no orphaned workers."""

    def set_parent_death_signal() -> None:
        if sys.platform == "linux":
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != supervisor_pid:
            os.kill(os.getpid(), signal.SIGTERM)

    return set_parent_death_signal


def supervise(command: list[str], count: int) -> int:
    """Run ``count`` copies of ``command`` until SIGTERM/SIGINT or until one exits; then stop and wait all."""
    stop_signal: int | None = None

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stop_signal
        stop_signal = signum

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    workers = [
        # Own process group: a terminal's Ctrl-C reaches only this process, which forwards it once.
        subprocess.Popen(command, process_group=0, preexec_fn=_die_with_supervisor(os.getpid()))
        for _ in range(count)
    ]
    while stop_signal is None and all(w.poll() is None for w in workers):
        time.sleep(POLL_S)
    died = [w for w in workers if w.returncode is not None]
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(stop_signal or signal.SIGTERM)
    for worker in workers:
        worker.wait()
    if died and stop_signal is None:
        log.warning("saq worker pid %d exited with %s; stopped the others", died[0].pid, died[0].returncode)
        return 1
    # A worker still importing when the signal came dies by it before SAQ installs its handlers: it held no
    # job, so that is a clean stop too.
    clean = (0, -signal.SIGTERM, -signal.SIGINT)
    return 0 if all(w.returncode in clean for w in workers) else 1


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s fbt-worker-saq: %(message)s")
    settings = get_settings()
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
    sys.exit(supervise(command, settings.worker_processes))


if __name__ == "__main__":
    main()
