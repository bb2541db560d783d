"""The two queue configs (QUEUE_CONFIG), read from SAQ 0.26's source (saq/job.py, saq/worker.py, saq/queue).

How SAQ recovers a job whose worker was SIGKILLed: nothing acknowledges a job; it stays in the ``active``
list with status ``active``. Every worker polls ``RedisQueue.sweep`` every ``timers.sweep`` seconds (one
of them gets a lock of that length), which looks at every active job and sweeps one that is not ``active``
or is ``stuck``: running longer than ``Job.timeout``, or untouched for longer than ``Job.heartbeat`` (0: no
heartbeat). A swept job is marked aborting, waited on for 5 s, then retried if it has attempts left
(``Job.retries > Job.attempts``), else finished as aborted. So out of the box (timeout 10 s, no heartbeat,
one attempt, a sweep a minute) a killed job is found within about 70 s and then dropped as aborted.

The sweep has a race (open upstream as tobymao/saq#277, "The task was swept during execution"): a worker
takes a job with BLMOVE and only then stores it as ``active``, so a sweep pass in between sees a ``queued``
job in the active list, sweeps it, waits for it to finish and, if it has attempts left, retries it: the job
runs twice. Every pass can hit it, and the first pass of a starting worker nearly always does (all its slots
dequeue at once). With the safe config's 3 attempts that is a duplicate execution (the send-once guard keeps
an email to one copy); with one attempt the finished job is stored as aborted instead. The ledger counts
those runs as duplicates: nothing here hides them.

Setting names are SAQ's: ``Job.<field>`` are the job fields given at enqueue, ``Worker.<option>`` the
Worker options of the settings dict ``saq`` starts the worker with.
"""

import math
from typing import Any

from fbt_tasks.retry import TRANSIENT_ERROR_NAMES
from fbt_tasks.runner import QueueConfig, QueueConfigName, Setting
from fbt_tasks.settings import Settings

# SAQ's own defaults (saq.job.Job fields, saq.worker.Worker), for describe() and the fault model.
SAQ_JOB_DEFAULTS: dict[str, Any] = {
    "timeout": 10,
    "heartbeat": 0,
    "retries": 1,
    "ttl": 600,
    "retry_delay": 0.0,
}
SAQ_WORKER_DEFAULTS: dict[str, Any] = {
    "timers.sweep": 60,
    "timers.schedule": 1,
    "timers.worker_info": 10,
    "dequeue_timeout": 0.0,
    "shutdown_grace_period_s": None,
}
# RedisQueue.sweep waits this long for a swept job to finish aborting before it retries or drops it.
SWEEP_ABORT_WAIT_S = 5.0
# Our job timeout floor; see job_timeout_s.
MIN_JOB_TIMEOUT_S = 60
# Marks a job whose non-transient errors end its retries (read by fbt_saq.tasks), stored at enqueue so the
# rule travels with the job, not with the worker's QUEUE_CONFIG.
TRANSIENT_ONLY_META = "fbt_retry_transient_only"

SAFE = QueueConfig(
    name="safe",
    summary=(
        "Three attempts, a heartbeat every few seconds and a sweep every 5 s, so a killed worker's job is "
        "retried within about 30 s; SIGTERM lets the jobs in hand finish"
    ),
    max_attempts=3,
    retries_on=TRANSIENT_ERROR_NAMES,
    settings={
        "Job.retries": Setting(
            3,
            "SAQ's retries counts attempts (Job.retryable: retries > attempts; default 1, no retry): 3 "
            "attempts as for the other runners, and a swept (killed) job is retried instead of aborted",
        ),
        "Job.retry_delay": Setting(
            1.0,
            "wait 1 s before a retry; a fixed delay (not retry_backoff, whose full jitter can draw 0 and "
            "requeue at once) always goes through the scheduler",
        ),
        "Job.heartbeat": Setting(
            15,
            "SAQ's heartbeat monitor for abandoned jobs: the job function touches its job every 5 s "
            "(await job.update(), as SAQ documents), so a job untouched for 15 s belongs to a dead worker",
        ),
        "Job.ttl": Setting(
            3600, "keep finished jobs an hour (SAQ: 600 s) so /jobs/{id} can report a whole run"
        ),
        "Worker.timers.sweep": Setting(
            5,
            "sweep stuck jobs every 5 s instead of every 60 s: recovery within a run, and a stopping worker "
            "waits for its upkeep loops to wake, so a long sweep sleep delays every SIGTERM",
        ),
        "Worker.timers.worker_info": Setting(
            5,
            "write the worker's liveness entry every 5 s (SAQ: 10 s): the other upkeep loop a stopping worker "
            "waits on, so a SIGTERM'd worker exits within seconds",
        ),
        "Worker.dequeue_timeout": Setting(
            1.0,
            "an idle slot's BLMOVE returns every second (SAQ: blocks forever), so a stopping worker "
            "does not wait out its grace period on slots that hold no job",
        ),
        "Worker.shutdown_grace_period_s": Setting(
            "Job.timeout",
            "on SIGTERM let the jobs in hand finish (SAQ: cancel them at once and requeue them, so a job "
            "that already did its work runs again)",
        ),
        "transient_only": Setting(
            True,
            "SAQ retries every exception; the job function ends the attempts of an error that cannot "
            "pass (fbt_tasks.retry) by setting job.retries to the attempts made, so a bad header fails at once",
        ),
    },
)

DEFAULTS = QueueConfig(
    name="defaults",
    summary=(
        "SAQ out of the box: one attempt, a 10 s job timeout, no heartbeat and a sweep a minute, so a "
        "killed worker's job is aborted, never re-run, and a failing job fails at once"
    ),
    max_attempts=1,
    settings={},
)

QUEUE_CONFIGS: dict[QueueConfigName, QueueConfig] = {"safe": SAFE, "defaults": DEFAULTS}

# How often the job function touches its job, as a fraction of the heartbeat: three beats per window.
BEATS_PER_HEARTBEAT = 3


def queue_config_for(settings: Settings) -> QueueConfig:
    return QUEUE_CONFIGS[settings.queue_config]


def job_timeout_s(settings: Settings) -> int:
    """SAQ cancels a job that runs longer than this; sized to the slowest task, as for RQ.

    send_email may wait out a send-once lease (about 2 x SMTP_TIMEOUT_S) and then make a few SMTP round
    trips, each bounded by SMTP_TIMEOUT_S.
    """
    return max(MIN_JOB_TIMEOUT_S, math.ceil(5 * settings.smtp_timeout_s))


def job_fields(settings: Settings) -> dict[str, Any]:
    """The SAQ Job fields every job is enqueued with (SAQ's defaults where the config sets none)."""
    config = queue_config_for(settings)
    fields = {**SAQ_JOB_DEFAULTS, **config.options("Job")}
    if "Job.retries" in config.settings:  # the safe config sizes the timeout; defaults keep SAQ's 10 s
        fields["timeout"] = job_timeout_s(settings)
    return fields


def worker_options(settings: Settings) -> dict[str, Any]:
    """Worker options in force, flattened as the settings name them ("timers.sweep")."""
    config = queue_config_for(settings)
    options = {**SAQ_WORKER_DEFAULTS, **config.options("Worker")}
    if options["shutdown_grace_period_s"] == "Job.timeout":
        options["shutdown_grace_period_s"] = job_fields(settings)["timeout"]
    return options


def worker_kwargs(settings: Settings) -> dict[str, Any]:
    """The Worker keyword arguments in force, as a ``saq`` settings dict takes them (concurrency aside)."""
    options = worker_options(settings)
    return {
        "timers": {key.removeprefix("timers."): v for key, v in options.items() if key.startswith("timers.")},
        "dequeue_timeout": options["dequeue_timeout"],
        "shutdown_grace_period_s": options["shutdown_grace_period_s"],
    }


def heartbeat_every_s(heartbeat_s: float) -> float | None:
    return heartbeat_s / BEATS_PER_HEARTBEAT if heartbeat_s else None
