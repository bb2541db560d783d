"""The two queue configs (QUEUE_CONFIG) and the sizing shared by both, read from arq 0.28's source.

How arq recovers a job whose worker was SIGKILLed (arq/worker.py ``start_jobs``, ``run_job``): a job's id
never leaves the queue's sorted set while it runs. Starting it sets ``arq:in-progress:<id>`` with a TTL of
the longest job timeout + 10 s, and any worker's poll skips an id whose in-progress key exists. A killed
worker never deletes that key, so once it expires the next poll (every ``poll_delay``) starts the job again
as its next try ("pessimistic execution": at least once). The bound is fixed when the job starts; nothing
heartbeats it.

Retries: arq re-runs a job only when it raises ``arq.Retry`` (or is cancelled); any other exception fails
it at once, its result (success false) kept ``keep_result`` seconds. ``max_tries`` counts every start of the
job, a killed worker's included, and a job started past it fails without running.

Setting names are arq's: ``Worker.<option>`` is an argument of ``arq.worker.Worker`` (the keys of the
settings the ``arq`` CLI reads), ``Retry.defer`` the argument of the ``Retry`` our job functions raise.
"""

import inspect
import math
from typing import Any

from arq.worker import Worker

from fbt_tasks.retry import TRANSIENT_ERROR_NAMES
from fbt_tasks.runner import QueueConfig, QueueConfigName, Setting
from fbt_tasks.settings import Settings

# What the safe config's Worker.job_timeout stands for; job_timeout_s() turns it into seconds.
SIZED = "max(30 s, 5 x SMTP_TIMEOUT_S)"
MIN_JOB_TIMEOUT_S = 30

SAFE = QueueConfig(
    name="safe",
    summary=(
        "A killed worker's job runs again once its in-progress key expires (job timeout + 10 s); a transient "
        "error gets 3 attempts via arq's Retry, 1 s then 2 s apart; SIGTERM lets running jobs finish"
    ),
    max_attempts=3,
    retries_on=TRANSIENT_ERROR_NAMES,
    settings={
        "Worker.max_tries": Setting(
            3,
            "3 attempts, as for the other runners; arq counts every start of a job as a try, a killed "
            "worker's too (arq: 5)",
        ),
        "Retry.defer": Setting(
            [1, 2],
            "arq retries only a job that raises Retry (docs: Retrying jobs); ours raise it on a transient "
            "error (fbt_tasks.retry) with a 1 s, then 2 s defer, and let any other error fail the job at once",
        ),
        "Worker.job_timeout": Setting(
            SIZED,
            "the slowest task is a redelivered email: it waits out the send-once lease (2 x SMTP_TIMEOUT_S + "
            "5 s), then makes a few SMTP round trips; the in-progress key lives job_timeout + 10 s, so this "
            "also bounds when a killed worker's job runs again (arq: 300 s, so 310 s)",
        ),
        "Worker.job_completion_wait": Setting(
            25,
            "on SIGTERM stop taking jobs and let running ones finish for up to 25 s, inside compose's 30 s "
            "stop_grace_period (arq: 0, which cancels them at once and puts them back on the queue)",
        ),
    },
)

# arq out of the box: the Worker's own defaults (read from its signature below, never copied).
DEFAULTS = QueueConfig(
    name="defaults",
    summary=(
        "arq out of the box: a failing job is not retried (only one that raises Retry is), a killed worker's "
        "job runs again after job_timeout + 10 s (310 s), and SIGTERM cancels running jobs and requeues them"
    ),
    max_attempts=1,
    settings={},
)

QUEUE_CONFIGS: dict[QueueConfigName, QueueConfig] = {"safe": SAFE, "defaults": DEFAULTS}

# arq's own defaults, from arq.worker.Worker's signature.
ARQ_DEFAULTS: dict[str, Any] = {
    name: parameter.default
    for name, parameter in inspect.signature(Worker).parameters.items()
    if parameter.default is not inspect.Parameter.empty
}
# The in-progress key outlives the longest job timeout by this much (arq/worker.py Worker.__init__).
IN_PROGRESS_EXTRA_S = 10


def queue_config_for(settings: Settings) -> QueueConfig:
    return QUEUE_CONFIGS[settings.queue_config]


def worker_option(config: QueueConfig, name: str) -> Any:
    """A ``Worker`` argument: the config's value, else arq's default."""
    return config.value(f"Worker.{name}", ARQ_DEFAULTS[name])


def job_timeout_s(config: QueueConfig, settings: Settings) -> float:
    """arq cancels a job running longer than this; the safe config sizes it to the slowest task."""
    value = worker_option(config, "job_timeout")
    if value == SIZED:
        return float(max(MIN_JOB_TIMEOUT_S, math.ceil(5 * settings.smtp_timeout_s)))
    return float(value)


def max_tries(config: QueueConfig) -> int:
    return int(worker_option(config, "max_tries"))


def retry_defers_s(config: QueueConfig) -> list[float]:
    """The defer of the Retry raised after attempt 1, 2, ...; empty: a failing job is not retried."""
    return [float(s) for s in config.value("Retry.defer", [])]


def in_progress_timeout_s(config: QueueConfig, settings: Settings) -> float:
    """How long a started job's in-progress key lives: what keeps a killed worker's job from running again."""
    return job_timeout_s(config, settings) + IN_PROGRESS_EXTRA_S
