"""Run N copies of one worker command, as ``rq worker-pool`` does: forward SIGTERM/SIGINT, replace the dead.

For the libraries whose worker CLI runs one process and leaves "more processes" to the operator (RQ: "simply
start more workers"; arq: one ``arq`` invocation is one process). Imports no queue library: the runner hands
over the command line.
"""

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("fbt_tasks.supervise")

# A worker that lived this long before dying crashed on its own; one that died sooner is failing to
# start (e.g. Redis is down), so its replacement waits longer each time, up to RESPAWN_MAX_S.
STABLE_S = 10.0
RESPAWN_MIN_S = 1.0
RESPAWN_MAX_S = 30.0
POLL_S = 0.5
PR_SET_PDEATHSIG = 1


def _die_with_supervisor(supervisor_pid: int) -> Callable[[], None]:
    """Ask Linux to SIGTERM the worker if this supervisor dies, even by SIGKILL: no orphaned workers."""

    def set_parent_death_signal() -> None:
        if sys.platform == "linux":
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != supervisor_pid:  # the supervisor died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return set_parent_death_signal


def _spawn(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        env=env,
        # Own process group: a terminal's Ctrl-C reaches only the supervisor, which forwards it once
        # (a second SIGINT would make RQ kill the running job).
        process_group=0,
        preexec_fn=_die_with_supervisor(os.getpid()),
    )


def supervise(command: list[str], env: dict[str, str], count: int, name: str = "worker") -> int:
    """Run ``count`` copies of ``command`` until SIGTERM/SIGINT, then forward it and wait for all to exit.

    Returns 0 when every copy stopped cleanly (exit 0, or killed by the forwarded signal before it installed
    its handlers), else 1. ``name`` only labels the log lines.
    """
    workers: list[subprocess.Popen[bytes] | None] = [None] * count
    started_at = [0.0] * count
    restart_at = [0.0] * count
    backoff = [RESPAWN_MIN_S] * count
    stop_signal: int | None = None

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stop_signal
        stop_signal = signum
        for worker in workers:
            if worker is not None and worker.poll() is None:
                worker.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        now = time.monotonic()
        for slot, worker in enumerate(workers):
            if stop_signal is not None or (worker is not None and worker.poll() is None):
                continue
            if worker is not None:
                lived = now - started_at[slot]
                backoff[slot] = RESPAWN_MIN_S if lived > STABLE_S else min(backoff[slot] * 2, RESPAWN_MAX_S)
                restart_at[slot] = now + backoff[slot]
                log.warning(
                    "%s pid %d exited with %s; replacing it in %.0f s",
                    name,
                    worker.pid,
                    worker.returncode,
                    backoff[slot],
                )
                workers[slot] = None
            if now >= restart_at[slot]:
                spawned = workers[slot] = _spawn(command, env)
                started_at[slot] = now
                if stop_signal is not None:  # the signal arrived while this one was starting
                    spawned.send_signal(stop_signal)
        if stop_signal is not None and all(w is None or w.poll() is not None for w in workers):
            # A worker still importing when the signal came dies by it before the library installs its
            # handlers: it held no job, so that is a clean stop too.
            clean = (0, -stop_signal)
            return 0 if all(w is None or w.returncode in clean for w in workers) else 1
        time.sleep(POLL_S)
