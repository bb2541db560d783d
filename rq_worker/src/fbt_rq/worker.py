"""``fbt-worker-rq``: RQ's own documented ``rq worker`` command, with arguments derived from the settings.

Concurrency. An RQ worker runs one job at a time; RQ's docs: "If you want to perform jobs concurrently,
simply start more workers." So ``slots`` (WORKER_PROCESSES x WORKER_THREADS) ``rq worker`` processes run.
RQ 3.0 has ``rq worker-pool -n N`` for that, but it takes no ``--worker-ttl``, ``--maintenance-interval`` or
``--job-monitoring-interval`` (rq/cli/workers.py), which the safe queue config needs. So with one slot this
process execs ``rq worker``; with more it starts that many ``rq worker`` processes and, like worker-pool,
forwards SIGTERM/SIGINT to them and replaces one that dies.

Worker class (RQ_WORKER_MODE). ``fork`` (the default, RQ's ``rq.Worker``) forks a work-horse per job:
a crashing or leaking job cannot take the worker down or bloat it, at the cost of a fork per job: about
20 ms per trivial job here against 3-4 ms in-process (one worker, a shared 2-core machine), which caps
throughput on short jobs. Imports are paid once, before the fork (see worker_settings). ``simple``
(``rq.SimpleWorker``) runs jobs in the worker process: faster, but a crashing job kills the worker, and
it cannot heartbeat mid-job, so a killed job is only noticed after job timeout + 60 s. (Not named
RQ_WORKER_CLASS: that is the ``rq`` CLI's own variable for ``--worker-class`` and takes a class path.)

Shutdown, as RQ does it: the first SIGTERM/SIGINT is a warm shutdown (finish the current job, register
death, exit); a second one is cold (the work-horse is killed).
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

from rq.defaults import DEFAULT_JOB_MONITORING_INTERVAL, DEFAULT_MAINTENANCE_TASK_INTERVAL, DEFAULT_WORKER_TTL

from fbt_rq.queue_configs import (
    QUEUE_NAME,
    SERIALIZER,
    WORKER_CLASSES,
    job_monitoring_interval,
    maintenance_interval,
    queue_config_for,
    worker_ttl,
)
from fbt_tasks.settings import Settings, get_settings

log = logging.getLogger("fbt_rq.worker")

# A worker that lived this long before dying crashed on its own; one that died sooner is failing to
# start (e.g. Redis is down), so its replacement waits longer each time, up to RESPAWN_MAX_S.
STABLE_S = 10.0
RESPAWN_MIN_S = 1.0
RESPAWN_MAX_S = 30.0
POLL_S = 0.5
PR_SET_PDEATHSIG = 1


def rq_cli() -> list[str]:
    """The ``rq`` console script installed next to this interpreter, or its module form."""
    script = Path(sys.executable).parent / "rq"
    return [str(script)] if script.exists() else [sys.executable, "-m", "rq.cli"]


def worker_command(settings: Settings) -> list[str]:
    """``rq worker`` with only the options that differ from RQ's defaults for the chosen queue config."""
    config = queue_config_for(settings)
    # -c imports our settings module before the worker forks, preloading the job code (see worker_settings).
    command = [*rq_cli(), "worker", "--config", "fbt_rq.worker_settings", "--serializer", SERIALIZER]
    command += ["--worker-class", WORKER_CLASSES[settings.rq_worker_mode]]
    if worker_ttl(config) != DEFAULT_WORKER_TTL:
        command += ["--worker-ttl", str(worker_ttl(config))]
    if job_monitoring_interval(config) != DEFAULT_JOB_MONITORING_INTERVAL:
        command += ["--job-monitoring-interval", str(job_monitoring_interval(config))]
    if maintenance_interval(config) != DEFAULT_MAINTENANCE_TASK_INTERVAL:
        command += ["--maintenance-interval", str(maintenance_interval(config))]
    if config.value("with_scheduler", False):
        command.append("--with-scheduler")
    if handler := config.value("exception_handler"):
        command += ["--exception-handler", handler]
    return [*command, QUEUE_NAME]


def worker_env(settings: Settings) -> dict[str, str]:
    # RQ_REDIS_URL is the documented environment form of --url; it keeps a password out of `ps`.
    return {**os.environ, "RQ_REDIS_URL": settings.redis_url}


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


def supervise(command: list[str], env: dict[str, str], count: int) -> int:
    """Run ``count`` copies of ``command`` until SIGTERM/SIGINT, then forward it and wait for all to exit."""
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
                    "rq worker pid %d exited with %s; replacing it in %.0f s",
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
            # A worker still importing when the signal came dies by it before RQ installs its handlers:
            # it held no job, so that is a clean stop too.
            clean = (0, -stop_signal)
            return 0 if all(w is None or w.returncode in clean for w in workers) else 1
        time.sleep(POLL_S)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s fbt-worker-rq: %(message)s")
    settings = get_settings()
    command, env = worker_command(settings), worker_env(settings)
    shown = " ".join(["rq", *command[command.index("worker") :]])
    log.info("%d x `%s` (QUEUE_CONFIG=%s)", settings.slots, shown, settings.queue_config)
    if settings.slots == 1:
        os.execve(command[0], command, env)  # noqa: S606 - the process becomes `rq worker` itself
    sys.exit(supervise(command, env, settings.slots))


if __name__ == "__main__":
    main()
