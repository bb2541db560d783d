"""The settings the ``arq`` CLI runs a worker with: ``arq fbt_arq.worker_settings.WORKER_SETTINGS``.

arq's documented way to configure a worker is a ``WorkerSettings`` class or dict of ``arq.worker.Worker``
arguments named on its command line; this one is built from our settings (the environment) when the CLI
imports it, so every option comes from the queue config in force and the slot budget.
"""

from typing import Any

from arq.connections import RedisSettings

from fbt_arq.jobs import job_functions
from fbt_arq.queue_configs import job_timeout_s, max_tries, queue_config_for, worker_option
from fbt_arq.wire import QUEUE_NAME, dumps, loads
from fbt_tasks.registry import configured_settings
from fbt_tasks.settings import Settings


def health_check_interval_s(settings: Settings) -> float:
    """How often a worker refreshes arq's health-check key (which lives this + 1 s).

    A busy worker's poll loop waits for a free slot before it polls again, so it may not refresh the key
    for up to one job timeout: shorter, and a busy worker would look dead to the health check.
    """
    return job_timeout_s(queue_config_for(settings), settings)


def worker_options(settings: Settings) -> dict[str, int | float]:
    """The ``arq.worker.Worker`` options these settings choose, beyond the wiring (functions, queue, Redis,
    serializer): plain JSON values, so the fidelity reference (``fbt_arq.reference``) runs arq with the same."""
    config = queue_config_for(settings)
    return {
        # docs/CONTRACTS.md: WORKER_THREADS concurrent jobs per process, WORKER_PROCESSES processes.
        "max_jobs": settings.worker_threads,
        "job_timeout": job_timeout_s(config, settings),
        "max_tries": max_tries(config),
        "job_completion_wait": int(worker_option(config, "job_completion_wait")),
        "health_check_interval": health_check_interval_s(settings),
    }


def worker_settings(settings: Settings) -> dict[str, Any]:
    """The ``arq.worker.Worker`` arguments for these settings."""
    return {
        "functions": job_functions(queue_config_for(settings)),
        "queue_name": QUEUE_NAME,
        # arq parses the URL itself (database, password); REDIS_URL stays out of the command line.
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        **worker_options(settings),
        # JSON both ways, never arq's default pickle; the API writes jobs with the same functions.
        "job_serializer": dumps,
        "job_deserializer": loads,
    }


def __getattr__(name: str) -> Any:
    # Built on first access (the CLI's import_string), not on import, so tests can import this module.
    if name == "WORKER_SETTINGS":
        return worker_settings(configured_settings())
    raise AttributeError(name)
