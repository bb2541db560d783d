"""The two queue configs (QUEUE_CONFIG) and the sizing shared by both, read from RQ 3.0's source.

How RQ recovers a job whose worker was SIGKILLed (rq/registry.py ``StartedJobRegistry.cleanup``,
rq/worker/base.py): each running job sits in the StartedJobRegistry scored with a heartbeat deadline of
``min(job timeout, job_monitoring_interval) + 60`` s (fork worker) or ``job timeout + 60`` s (SimpleWorker,
which cannot heartbeat mid-job). A surviving worker's maintenance pass finds the expired entry and, only if
the job has retries left, re-enqueues it; otherwise it moves it to the FailedJobRegistry. Maintenance runs
only between dequeues, and an idle worker blocks in BLMOVE for ``worker_ttl - 15`` s: 405 s by default.
So out of the box a killed job is not recovered during a run, and never without ``Retry``.

Setting names are RQ's: ``Retry.max`` and ``Retry.interval`` are the arguments of ``rq.Retry`` given at
enqueue, the others the ``rq worker`` options of the same name.
"""

import math
from typing import Literal

from rq import Retry
from rq.defaults import DEFAULT_JOB_MONITORING_INTERVAL, DEFAULT_MAINTENANCE_TASK_INTERVAL, DEFAULT_WORKER_TTL

from fbt_tasks.retry import TRANSIENT_ERROR_NAMES
from fbt_tasks.runner import QueueConfig, QueueConfigName, Setting
from fbt_tasks.settings import Settings

QUEUE_NAME = "fbt"
# `rq worker --exception-handler`: see fbt_rq.jobs.stop_retrying_permanent_errors.
STOP_RETRY_HANDLER = "fbt_rq.jobs.stop_retrying_permanent_errors"
SERIALIZER = "rq.serializers.JSONSerializer"
WORKER_CLASSES: dict[Literal["fork", "simple"], str] = {"fork": "rq.Worker", "simple": "rq.SimpleWorker"}

# Keep results an hour (RQ: 500 s) so /jobs/{id} and a benchmark report can still look up every job of a run.
RESULT_TTL_S = 3600
# Keep failures a week (RQ: one year) for inspection, without failed jobs piling up in Redis forever.
FAILURE_TTL_S = 7 * 24 * 3600
# RQ's default job timeout is 180 s; ours is sized to the slowest task, see job_timeout_s.
MIN_JOB_TIMEOUT_S = 60

SAFE = QueueConfig(
    name="safe",
    summary=(
        "Retry on every job, so maintenance re-enqueues a killed worker's job (about a minute after its "
        "last heartbeat) and a failing job gets 3 attempts before the FailedJobRegistry"
    ),
    max_attempts=3,
    retries_on=TRANSIENT_ERROR_NAMES,
    settings={
        # RQ docs (Exceptions & Retries).
        "Retry.max": Setting(
            2,
            "re-runs failed jobs and makes cleanup re-enqueue an abandoned job instead of failing it; 2 "
            "retries after the first try (3 attempts, as for Celery and Dramatiq)",
        ),
        "Retry.interval": Setting([1, 2], "back off 1 s, then 2 s, so a failed job settles within seconds"),
        "exception_handler": Setting(
            STOP_RETRY_HANDLER,
            "RQ's Retry has no per-exception filter; its documented hook is an exception handler, which runs "
            "before the retry decision: this one ends the retries of an error that cannot pass "
            "(fbt_tasks.retry), so a bad header fails at once; a killed worker's job (AbandonedJobError) "
            "still comes back",
        ),
        "worker_ttl": Setting(
            20,
            "an idle worker blocks worker_ttl - 15 s per dequeue: 5 s, so maintenance (the only thing that "
            "recovers a killed worker's job) runs during a run instead of once every ~7 minutes",
        ),
        "job_monitoring_interval": Setting(
            5,
            "a busy fork worker heartbeats this often; its job counts as abandoned 60 s past the last heartbeat",
        ),
        "maintenance_interval": Setting(
            10,
            "clean registries (recover abandoned jobs, drop dead workers) every 10 s, not every 10 minutes",
        ),
        "with_scheduler": Setting(
            True,
            "RQ docs: \"If you use interval argument with Retry, don't forget to run your workers using "
            '--with-scheduler"; without it, retries with a backoff sit in the ScheduledJobRegistry forever',
        ),
    },
)

# RQ's out-of-the-box behaviour: no retries, so a failed or abandoned job goes to the FailedJobRegistry; the
# worker options keep RQ's defaults (rq.defaults).
DEFAULTS = QueueConfig(
    name="defaults",
    summary=(
        "RQ out of the box: no Retry, so a killed worker's job and a failing job both end in the "
        "FailedJobRegistry, and an idle worker runs maintenance only every ~7 minutes"
    ),
    max_attempts=1,
    settings={},
)

QUEUE_CONFIGS: dict[QueueConfigName, QueueConfig] = {"safe": SAFE, "defaults": DEFAULTS}


def queue_config_for(settings: Settings) -> QueueConfig:
    return QUEUE_CONFIGS[settings.queue_config]


def retry(config: QueueConfig) -> Retry | None:
    """The ``Retry`` every job is enqueued with; None: RQ's default, no retry."""
    retry_max = config.value("Retry.max")
    if retry_max is None:
        return None
    return Retry(max=retry_max, interval=list(config.value("Retry.interval", [])))


def worker_ttl(config: QueueConfig) -> int:
    return int(config.value("worker_ttl", DEFAULT_WORKER_TTL))


def job_monitoring_interval(config: QueueConfig) -> int:
    return int(config.value("job_monitoring_interval", DEFAULT_JOB_MONITORING_INTERVAL))


def maintenance_interval(config: QueueConfig) -> int:
    return int(config.value("maintenance_interval", DEFAULT_MAINTENANCE_TASK_INTERVAL))


def dequeue_timeout(config: QueueConfig) -> int:
    """How long an idle worker blocks between heartbeats and maintenance passes (rq.worker.base)."""
    return max(1, worker_ttl(config) - 15)


def worker_key_ttl(config: QueueConfig) -> int:
    """How long a worker's registry entry outlives its last heartbeat (RQ's own liveness definition)."""
    return worker_ttl(config) + 60


def job_timeout_s(settings: Settings) -> int:
    """RQ kills a job that runs longer than this (SIGALRM in the work horse); sized to the slowest task.

    send_email is the slowest: it may wait out a send-once lease (about 2 x SMTP_TIMEOUT_S) and then make a
    few SMTP round trips, each bounded by SMTP_TIMEOUT_S. A 40-megapixel resize takes ~2 s on one core.
    """
    return max(MIN_JOB_TIMEOUT_S, math.ceil(5 * settings.smtp_timeout_s))
