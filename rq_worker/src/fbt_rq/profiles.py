"""The two reliability profiles (QUEUE_CONFIG) and the sizing shared by both, read from RQ 3.0's source.

How RQ recovers a job whose worker was SIGKILLed (rq/registry.py ``StartedJobRegistry.cleanup``,
rq/worker/base.py): each running job sits in the StartedJobRegistry scored with a heartbeat deadline of
``min(job timeout, job_monitoring_interval) + 60`` s (fork worker) or ``job timeout + 60`` s (SimpleWorker,
which cannot heartbeat mid-job). A surviving worker's maintenance pass finds the expired entry and, only if
the job has retries left, re-enqueues it; otherwise it moves it to the FailedJobRegistry. Maintenance runs
only between dequeues, and an idle worker blocks in BLMOVE for ``worker_ttl - 15`` s: 405 s by default.
So out of the box a killed job is not recovered during a run, and never without ``Retry``.
"""

import math
from dataclasses import dataclass
from typing import Literal

from rq import Retry
from rq.defaults import DEFAULT_JOB_MONITORING_INTERVAL, DEFAULT_MAINTENANCE_TASK_INTERVAL, DEFAULT_WORKER_TTL

from fbt_tasks.settings import Settings

QUEUE_NAME = "fbt"
SERIALIZER = "rq.serializers.JSONSerializer"
WORKER_CLASSES: dict[Literal["fork", "simple"], str] = {"fork": "rq.Worker", "simple": "rq.SimpleWorker"}

# Keep results an hour (RQ: 500 s) so /jobs/{id} and a benchmark report can still look up every job of a run.
RESULT_TTL_S = 3600
# Keep failures a week (RQ: one year) for inspection, without failed jobs piling up in Redis forever.
FAILURE_TTL_S = 7 * 24 * 3600
# RQ's default job timeout is 180 s; ours is sized to the slowest task, see job_timeout_s.
MIN_JOB_TIMEOUT_S = 60


@dataclass(frozen=True, slots=True)
class Profile:
    name: Literal["safe", "defaults"]
    retry_max: int | None
    retry_intervals: tuple[int, ...]
    worker_ttl: int
    job_monitoring_interval: int
    maintenance_interval: int
    with_scheduler: bool

    def retry(self) -> Retry | None:
        if self.retry_max is None:
            return None
        return Retry(max=self.retry_max, interval=list(self.retry_intervals))

    @property
    def dequeue_timeout(self) -> int:
        """How long an idle worker blocks between heartbeats and maintenance passes (rq.worker.base)."""
        return max(1, self.worker_ttl - 15)

    @property
    def worker_key_ttl(self) -> int:
        """How long a worker's registry entry outlives its last heartbeat (RQ's own liveness definition)."""
        return self.worker_ttl + 60


SAFE = Profile(
    name="safe",
    # RQ docs (Exceptions & Retries): Retry re-runs failed jobs; it is also what makes cleanup re-enqueue
    # an abandoned job instead of failing it. 2 retries after the first try (3 attempts, as for Celery and
    # Dramatiq), backing off 1 then 2 s.
    retry_max=2,
    retry_intervals=(1, 2),
    # An idle worker dequeues with a worker_ttl - 15 s block; 20 s makes that 5 s, so maintenance (the only
    # thing that recovers a killed worker's job) runs during a run instead of once every ~7 minutes.
    worker_ttl=20,
    # A busy fork worker heartbeats this often; its job counts as abandoned 60 s past the last heartbeat.
    job_monitoring_interval=5,
    # Clean registries (recover abandoned jobs, drop dead workers) every 10 s instead of every 10 minutes.
    maintenance_interval=10,
    # RQ docs: "If you use interval argument with Retry, don't forget to run your workers using
    # --with-scheduler"; without it, retries with a backoff sit in the ScheduledJobRegistry forever.
    with_scheduler=True,
)

DEFAULTS = Profile(
    name="defaults",
    # RQ's out-of-the-box behaviour: no retries, so a failed or abandoned job goes to the FailedJobRegistry.
    retry_max=None,
    retry_intervals=(),
    worker_ttl=DEFAULT_WORKER_TTL,
    job_monitoring_interval=DEFAULT_JOB_MONITORING_INTERVAL,
    maintenance_interval=DEFAULT_MAINTENANCE_TASK_INTERVAL,
    with_scheduler=False,
)


def profile_for(settings: Settings) -> Profile:
    return SAFE if settings.queue_config == "safe" else DEFAULTS


def job_timeout_s(settings: Settings) -> int:
    """RQ kills a job that runs longer than this (SIGALRM in the work horse); sized to the slowest task.

    send_email is the slowest: it may wait out a send-once lease (about 2 x SMTP_TIMEOUT_S) and then make a
    few SMTP round trips, each bounded by SMTP_TIMEOUT_S. A 40-megapixel resize takes ~2 s on one core.
    """
    return max(MIN_JOB_TIMEOUT_S, math.ceil(5 * settings.smtp_timeout_s))
