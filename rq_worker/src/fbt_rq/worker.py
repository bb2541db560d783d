"""``fbt-worker-rq``: RQ's own documented ``rq worker`` command, with arguments derived from the settings.

Concurrency. An RQ worker runs one job at a time; RQ's docs: "If you want to perform jobs concurrently,
simply start more workers." So ``slots`` (WORKER_PROCESSES x WORKER_THREADS) ``rq worker`` processes run.
RQ 3.0 has ``rq worker-pool -n N`` for that, but it takes no ``--worker-ttl``, ``--maintenance-interval`` or
``--job-monitoring-interval`` (rq/cli/workers.py), which the safe queue config needs. So with one slot this
process execs ``rq worker``; with more it starts that many ``rq worker`` processes and, like worker-pool,
forwards SIGTERM/SIGINT to them and replaces one that dies (``fbt_tasks.supervise``, shared with arq).

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

import logging
import os
import sys

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
from fbt_rq.settings import get_rq_settings
from fbt_tasks.registry import configured_settings
from fbt_tasks.runner import QueueConfig
from fbt_tasks.scripts import console_script
from fbt_tasks.settings import Settings
from fbt_tasks.supervise import supervise

log = logging.getLogger("fbt_rq.worker")


def worker_options(config: QueueConfig) -> dict[str, int | bool]:
    """The ``rq worker`` options the queue config sets away from RQ's defaults, by RQ's names."""
    options: dict[str, int | bool] = {}
    if worker_ttl(config) != DEFAULT_WORKER_TTL:
        options["worker_ttl"] = worker_ttl(config)
    if job_monitoring_interval(config) != DEFAULT_JOB_MONITORING_INTERVAL:
        options["job_monitoring_interval"] = job_monitoring_interval(config)
    if maintenance_interval(config) != DEFAULT_MAINTENANCE_TASK_INTERVAL:
        options["maintenance_interval"] = maintenance_interval(config)
    if config.value("with_scheduler", False):
        options["with_scheduler"] = True
    return options


def library_arguments(settings: Settings) -> list[str]:
    """The ``rq worker`` arguments that are RQ's own: the serializer, the worker class and the queue config's
    worker options. The project's and the fidelity reference's workers (``fbt_rq.reference``) share them."""
    arguments = ["--serializer", SERIALIZER, "--worker-class", WORKER_CLASSES[get_rq_settings().worker_mode]]
    for name, value in worker_options(queue_config_for(settings)).items():
        flag = "--" + name.replace("_", "-")
        arguments += [flag] if value is True else [flag, str(value)]
    return arguments


def worker_command(settings: Settings) -> list[str]:
    """``rq worker`` with only the options that differ from RQ's defaults for the chosen queue config."""
    config = queue_config_for(settings)
    # -c imports our settings module before the worker forks, preloading the job code (see worker_settings).
    command = [
        *console_script("rq", "rq.cli"),
        "worker",
        "--config",
        "fbt_rq.worker_settings",
        *library_arguments(settings),
    ]
    if handler := config.value("exception_handler"):
        command += ["--exception-handler", handler]
    return [*command, QUEUE_NAME]


def worker_env(settings: Settings) -> dict[str, str]:
    # RQ_REDIS_URL is the documented environment form of --url; it keeps a password out of `ps`.
    return {**os.environ, "RQ_REDIS_URL": settings.redis_url}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s fbt-worker-rq: %(message)s")
    settings = configured_settings()
    command, env = worker_command(settings), worker_env(settings)
    shown = " ".join(["rq", *command[command.index("worker") :]])
    log.info("%d x `%s` (QUEUE_CONFIG=%s)", settings.slots, shown, settings.queue_config)
    if settings.slots == 1:
        os.execve(command[0], command, env)  # noqa: S606 - the process becomes `rq worker` itself
    sys.exit(supervise(command, env, settings.slots, name="rq worker"))


if __name__ == "__main__":
    main()
