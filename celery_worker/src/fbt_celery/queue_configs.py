"""The two queue configs (QUEUE_CONFIG), in the shape every runner uses (``fbt_tasks.runner.QueueConfig``).

- ``defaults``: Celery out of the box. The message is acked *before* the task runs (early ack), so a
  worker killed mid-task loses it; a failed task is not retried; and, as Celery ships, no result backend:
  no job state is stored (no STARTED, SUCCESS or FAILURE), so /jobs/{id} reads queued for every id.
- ``safe``: the configuration the Celery docs give for not losing work: late ack, requeue when the pool
  process dies, one reserved message per process, a visibility timeout sized to our longest task, and
  up to three attempts with a short backoff for transient errors only. The price is at-least-once
  delivery: tasks must be idempotent (email is, through ``fbt_tasks.once``; logs and resizes tolerate a repeat).

On RabbitMQ (BROKER=rabbitmq) there is no visibility timeout: the broker itself returns a consumer's
unacked messages the moment its connection closes. ``safe`` there adds what RabbitMQ offers for durability:
quorum queues, persistent messages and publisher confirms.

Setting names say where Celery takes them: a bare name is an app setting (``app.conf``),
``broker_transport_options.<name>`` a kombu transport option, ``Task.<name>`` a task option.
"""

from fbt_tasks.retry import TRANSIENT_ERROR_NAMES
from fbt_tasks.runner import QueueConfig, QueueConfigName, Setting
from fbt_tasks.settings import Settings

TRANSPORT = "broker_transport_options"
TASK = "Task"

# kombu's Redis transport emulates acks: a delivered message sits in the ``unacked`` hash until acked, and
# any consumer's periodic sweep requeues entries older than the visibility timeout. It must exceed the
# longest a message stays unacked (reserved + running), or a live task is delivered a second time. Our
# longest task is resize_image at its 40-megapixel limit: 1.7 s alone on one core here, so roughly 7 s with
# 8 slots sharing 2 cores; an email is bounded by one SMTP exchange at SMTP_TIMEOUT_S (10 s). 30 s covers
# both with margin, and is also how long the jobs of a SIGKILLed worker wait before they are redelivered.
# (A redelivered email may first wait out the dead attempt's lease in fbt_tasks.once, past 30 s; a further
# delivery then finds the sent record and skips, so the worst case is a wasted attempt, never a 2nd email.)
VISIBILITY_TIMEOUT_S = 30
# kombu sweeps every ``unacked_restore_interval`` s but scans Redis only on every
# ``unacked_restore_throttle``-th sweep: 10 x 10 by default, so abandoned messages came back ~100 s late
# whatever the visibility timeout. Scanning every second bounds redelivery to visibility timeout + 1 s.
UNACKED_SWEEP_S = 1
# Three attempts in all: the first run plus two retries, 1 s and then 2 s later (backoff 1 s, doubling,
# never more than RETRY_BACKOFF_MAX_S).
MAX_RETRIES = 2
RETRY_BACKOFF_S = 1
RETRY_BACKOFF_MAX_S = 4
# The value of the ``result_backend`` setting that means "the Redis at REDIS_URL" (app.py puts the URL in
# its place): a queue config is recorded in results.json, so it names the server, never its URL.
RESULTS_IN_REDIS = "REDIS_URL"


def _results() -> dict[str, Setting]:
    """Where task states are stored: Redis in the safe queue configs; Celery has no backend by default."""
    return {
        "result_backend": Setting(
            RESULTS_IN_REDIS,
            "Celery stores no results by default (every id reads PENDING); /jobs/{id} reads the state from "
            "here (beside RabbitMQ too, which keeps no results: Celery docs)",
        ),
    }


def _track_started() -> dict[str, Setting]:
    """The STARTED state the safe queue configs store; out of the box a job goes from PENDING to done."""
    return {
        "task_track_started": Setting(
            True,
            'report STARTED while a task runs (off by default: "not that level of granularity"), so /jobs '
            "tells a running job from a queued one; one more result-backend write per task",
        ),
    }


def _retries() -> dict[str, Setting]:
    """The retry options both brokers share: three attempts with a short doubling backoff, on
    transient errors only."""
    return {
        f"{TASK}.autoretry_for": Setting(
            list(TRANSIENT_ERROR_NAMES),
            "retry only errors that can pass (SMTP, connection and Redis errors: fbt_tasks.retry); a task "
            "that can never succeed (a ValueError from a bad header) fails at once instead of 3 times",
        ),
        f"{TASK}.max_retries": Setting(MAX_RETRIES, "three attempts in all: the first run plus two retries"),
        f"{TASK}.retry_backoff": Setting(
            RETRY_BACKOFF_S, "exponential backoff from 1 s (retry_backoff=N starts at N s): 1 s, then 2 s"
        ),
        f"{TASK}.retry_backoff_max": Setting(RETRY_BACKOFF_MAX_S, "caps the doubling backoff"),
        f"{TASK}.retry_jitter": Setting(
            False,
            "off, unlike Celery's default: full jitter can run a retry at once, racing the RETRY state "
            "Celery stores only after publishing it, and a stale RETRY could land after the final FAILURE",
        ),
    }


def _late_ack() -> dict[str, Setting]:
    """The acknowledgement settings both brokers share: ack after the run, requeue on a lost process."""
    return {
        "task_acks_late": Setting(
            True, "ack after the task ran, not before, so a task killed mid-run is redelivered"
        ),
        "task_reject_on_worker_lost": Setting(
            True,
            "even with late ack Celery acks when the pool process dies (SIGKILL, OOM); requeue instead "
            "(the docs warn this can loop on a task that always kills its process: none of ours does)",
        ),
        "worker_prefetch_multiplier": Setting(
            1,
            '"reserve one task at a time" (optimizing guide): with late ack, a dying worker holds at most '
            "one unacked message per process, and long tasks do not sit behind each other in one worker",
        ),
        "worker_cancel_long_running_tasks_on_connection_loss": Setting(
            True,
            "a late-ack task cannot ack after a broker connection loss and is redelivered anyway; the docs "
            'make cancelling it the default in Celery 6, as running it twice in parallel "leads to more '
            'problems than it solves"',
        ),
    }


SAFE = QueueConfig(
    name="safe",
    summary=(
        "late ack, requeue on a lost pool process and a 30 s visibility timeout: a killed worker's tasks "
        "come back; a failing task gets 3 attempts, then FAILURE in the result backend"
    ),
    max_attempts=MAX_RETRIES + 1,
    retries_on=TRANSIENT_ERROR_NAMES,
    settings={
        **_results(),
        **_track_started(),
        **_late_ack(),
        f"{TRANSPORT}.visibility_timeout": Setting(
            VISIBILITY_TIMEOUT_S,
            "longer than a message stays unacked (our longest task, ~7 s on a loaded machine; an SMTP "
            "exchange, 10 s), and how long a SIGKILLed worker's jobs wait; the Celery Redis docs default "
            "is 1 hour",
        ),
        f"{TRANSPORT}.unacked_restore_interval": Setting(
            UNACKED_SWEEP_S,
            "sweep for abandoned unacked messages every second (kombu transport docs: lower the interval "
            "to recover abandoned messages faster)",
        ),
        f"{TRANSPORT}.unacked_restore_throttle": Setting(
            1,
            "scan Redis on every sweep, not every 10th (kombu transport docs: set the throttle to 1 to "
            "make the interval the sole control), so redelivery is due by visibility timeout + 1 s",
        ),
        **_retries(),
    },
)

DEFAULTS = QueueConfig(
    name="defaults",
    summary=(
        "Celery out of the box: early ack (a killed worker's running tasks are lost, its prefetched "
        "messages wait out the 1 hour visibility timeout), no retry (the first failure is final) and no "
        "result backend: no job state is stored, so /jobs reads queued for every id"
    ),
    max_attempts=1,
    settings={},
)

SAFE_RABBITMQ = QueueConfig(
    name="safe",
    summary=(
        "late ack and requeue on a lost pool process on a durable quorum queue, persistent messages and "
        "publisher confirms: a killed worker's tasks return when its connection closes; a failing task "
        "gets 3 attempts, then FAILURE in the Redis result backend"
    ),
    max_attempts=MAX_RETRIES + 1,
    retries_on=TRANSIENT_ERROR_NAMES,
    settings={
        **_results(),
        **_track_started(),
        **_late_ack(),
        "task_default_queue_type": Setting(
            "quorum",
            "a durable, replicated queue, the type RabbitMQ recommends for data safety; Celery 5.5+ "
            "declares it and switches to per-consumer QoS, which quorum queues require",
        ),
        "task_default_exchange_type": Setting(
            "topic",
            "a retry's countdown on a quorum queue uses Celery's native delayed delivery, which needs the "
            "queue bound to a topic exchange (Celery quorum queue docs; a direct one blocks the worker)",
        ),
        "task_default_delivery_mode": Setting(
            "persistent",
            "messages are written to disk, so a broker restart keeps them (Celery's default, pinned)",
        ),
        f"{TRANSPORT}.confirm_publish": Setting(
            True,
            "publisher confirms: apply_async returns only once RabbitMQ took the message, and a refusal "
            "raises instead of being dropped silently (kombu py-amqp transport docs)",
        ),
        **_retries(),
    },
)

DEFAULTS_RABBITMQ = QueueConfig(
    name="defaults",
    summary=(
        "Celery out of the box on RabbitMQ: a durable classic queue and persistent messages, but early ack "
        "(a killed worker's running tasks are lost, its prefetched ones return when its connection closes), "
        "no publisher confirms, no retry and no result backend: no job state is stored, so /jobs reads "
        "queued for every id"
    ),
    max_attempts=1,
    settings={},
)

QUEUE_CONFIGS: dict[str, dict[QueueConfigName, QueueConfig]] = {
    "redis": {"safe": SAFE, "defaults": DEFAULTS},
    "rabbitmq": {"safe": SAFE_RABBITMQ, "defaults": DEFAULTS_RABBITMQ},
}


def queue_config_for(settings: Settings) -> QueueConfig:
    return QUEUE_CONFIGS[settings.broker_name][settings.queue_config]
