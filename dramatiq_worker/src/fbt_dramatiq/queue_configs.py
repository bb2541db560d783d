"""The two queue configs (QUEUE_CONFIG): Dramatiq's out-of-the-box behaviour, and the safe one.

Dramatiq's Redis broker acks late: a worker moves each message it fetches into an "acks" set of its own and
removes it only after the actor returned (``dramatiq/brokers/redis/dispatch.lua``). A SIGKILLed worker's
messages therefore stay in Redis, and *queue maintenance* puts them back once the worker's heartbeat is
older than ``heartbeat_timeout``: "some time (the heartbeat timeout) has to pass until those messages are
put back on their respective queues" (Bogdanp, dramatiq#527). Maintenance is not a timer: each broker
command runs it with probability ``maintenance_chance`` per million. Both queue configs lose nothing on
SIGKILL; they differ in how soon the messages come back, and in retries.

On RabbitMQ (BROKER=rabbitmq) acks are the broker's own: a consumer's unacked messages return the moment
its connection closes, so there is no heartbeat timeout or maintenance to tune. Queues are durable and
messages persistent in both configs (Dramatiq always declares and publishes them so); ``safe`` adds
publisher confirms.

Job states are writes Dramatiq does not make by default: it keeps no outcome and no "started" state. The
safe configs keep both, because GET /jobs/{id} needs them: ``actor.store_results`` (Dramatiq's Results
middleware, one result SET per job) and ``MarkStarted.ttl_s`` (``fbt_dramatiq.middleware``, one SET per
attempt before the actor runs), in Redis whichever broker carries the messages. ``defaults`` runs without
them, as Dramatiq does out of the box: /jobs/{id} then reads "queued" for every id (CONTRACTS.md).

Setting names say where Dramatiq takes them: ``RedisBroker.<name>`` / ``RabbitmqBroker.<name>`` a keyword
argument of the broker, ``actor.<name>`` an option every actor is declared with, ``MarkStarted.<name>`` a
keyword argument of our middleware (added only when set); a missing one keeps Dramatiq's default.
"""

from fbt_tasks.retry import TRANSIENT_ERROR_NAMES
from fbt_tasks.runner import QueueConfig, QueueConfigName, Setting
from fbt_tasks.settings import Settings

BROKER = "RedisBroker"
RABBITMQ_BROKER = "RabbitmqBroker"
ACTOR = "actor"
# The Redis client of the worker processes (the API's keeps failing fast, so it can answer 503).
WORKER_CLIENT = "worker Redis client"
# fbt_dramatiq.middleware.MarkStarted, added to the broker only when the queue config sets it.
MARK_STARTED = "MarkStarted"
# Results and "started" marks live a day, so /jobs/{id} answers for a day (Celery's result_expires default)
# rather than Dramatiq's 10 minutes; each costs ~100 bytes of Redis memory per job.
RESULT_TTL_MS = 24 * 60 * 60 * 1000


def _actor_options() -> dict[str, Setting]:
    """Retries (transient errors only), backoff and time limit: the same on both brokers."""
    return {
        f"{ACTOR}.max_retries": Setting(
            2,
            "at most 3 attempts: transient faults (an SMTP hiccup) get two more tries, a poison job fails fast",
        ),
        f"{ACTOR}.retry_when": Setting(
            list(TRANSIENT_ERROR_NAMES),
            "retry only errors that can pass (fbt_tasks.retry), up to max_retries: Dramatiq's retry_when "
            "predicate replaces max_retries, so fbt_dramatiq.actors builds one that checks both",
        ),
        f"{ACTOR}.min_backoff": Setting(
            1_000,
            "backoff doubles from min_backoff with up to 2x jitter (compute_backoff): ~1-2 s, then ~2-4 s, "
            "instead of the default 15 s start, so a failed job settles within seconds",
        ),
        f"{ACTOR}.max_backoff": Setting(
            5_000, "caps the jittered delay; with two retries it only matters if max_retries is raised"
        ),
        f"{ACTOR}.time_limit": Setting(
            60_000,
            "TimeLimit interrupts a hung actor and frees its thread: 6x SMTP_TIMEOUT_S's default and ~35x a "
            "40-megapixel resize, instead of the default 10 minutes",
        ),
    }


def _job_states() -> dict[str, Setting]:
    """The per-job state writes /jobs/{id} reads, which Dramatiq does not make by default."""
    return {
        f"{ACTOR}.store_results": Setting(
            True,
            "Dramatiq keeps no outcome: its Results middleware stores each job's return value or final "
            "exception in Redis (one write per job), so /jobs/{id} can tell succeeded from failed",
        ),
        f"{ACTOR}.result_ttl": Setting(
            RESULT_TTL_MS,
            "results live a day (Celery's result_expires default) rather than Dramatiq's 10 minutes, so "
            "/jobs/{id} still answers after a long run; ~100 bytes of Redis each",
        ),
        f"{MARK_STARTED}.ttl_s": Setting(
            RESULT_TTL_MS // 1000,
            "Dramatiq keeps no 'started' state: one SET per attempt before the actor runs lets /jobs/{id} "
            "say started (also while a retry waits or a killed worker's job awaits requeueing)",
        ),
    }


SAFE = QueueConfig(
    name="safe",
    summary=(
        "late acks (as always) with a 10 s heartbeat timeout and frequent maintenance, so a killed worker's "
        "messages come back within seconds; a failing job gets 3 attempts, then the dead-letter queue; job "
        "states (started, result) kept in Redis for /jobs/{id}"
    ),
    max_attempts=3,
    retries_on=TRANSIENT_ERROR_NAMES,
    settings={
        # A live worker heartbeats on every broker call and its delay-queue consumer polls ~1/s even while all
        # threads are busy; the longest gap seen here was 4 s, a 40-megapixel resize holding the GIL.
        f"{BROKER}.heartbeat_timeout": Setting(
            10_000,
            "a worker silent this long is declared dead and its unacked messages requeued; 10 s keeps a "
            "margin over a live worker's longest silence yet requeues within the harness's stall timeout "
            "(20-30 s), which the 60 s default would not",
        ),
        # It costs a ZRANGEBYSCORE per maintained call plus a KEYS scan per dead worker, dropped once its jobs
        # are back.
        f"{BROKER}.maintenance_chance": Setting(
            100_000,
            "10 % of broker calls run maintenance (default 0.1 %): an idle worker process polls each queue "
            "about once a second, so requeueing follows the heartbeat expiry within seconds, not minutes",
        ),
        # dramatiq/broker.py emit_after logs a failing middleware and carries on to the ack: a Retries
        # re-enqueue that meets a broker outage would otherwise be dropped while its original is acked.
        f"{WORKER_CLIENT}.ride_out_s": Setting(
            20,
            "the workers retry a failed Redis command with backoff for ~20 s, so a retry's re-enqueue (and the "
            "ack) waits out a broker restart; a command re-sent after a lost reply may enqueue a copy, which "
            "the send-once guard absorbs",
        ),
        **_actor_options(),
        **_job_states(),
    },
)

# Nothing set: RedisBroker(heartbeat_timeout=60_000, maintenance_chance=1_000), Retries(max_retries=20,
# min_backoff=15 s, max_backoff=7 days), TimeLimit(10 min), no Results middleware and no started mark
# (/jobs/{id} reads "queued" for every id). A killed worker's messages come back only after
# 60 s *and* a 0.1 % maintenance draw, i.e. minutes later on a quiet queue (measured by the fault benchmark).
DEFAULTS = QueueConfig(
    name="defaults",
    summary=(
        "Dramatiq out of the box: late acks, but a killed worker's messages come back only after a 60 s "
        "heartbeat timeout and a 0.1 % maintenance draw; 20 retries from a 15 s backoff; no job states kept"
    ),
    max_attempts=21,
    retries_on=("Exception",),
    settings={},
)

SAFE_RABBITMQ = QueueConfig(
    name="safe",
    summary=(
        "late acks with publisher confirms on durable queues: a killed worker's messages return when its "
        "connection closes; a failing job gets 3 attempts, then the dead-letter queue; job states (started, "
        "result) kept in Redis for /jobs/{id}"
    ),
    max_attempts=3,
    retries_on=TRANSIENT_ERROR_NAMES,
    settings={
        f"{RABBITMQ_BROKER}.confirm_delivery": Setting(
            True,
            "enqueue waits for RabbitMQ to confirm the message was committed (Dramatiq docs), so an accepted "
            "job is on the broker; it also lets Dramatiq re-declare a queue that went missing",
        ),
        **_actor_options(),
        **_job_states(),
    },
)

# Nothing set: RabbitmqBroker(confirm_delivery=False), the same Retries and TimeLimit defaults as on Redis, no
# Results middleware and no started mark.
DEFAULTS_RABBITMQ = QueueConfig(
    name="defaults",
    summary=(
        "Dramatiq out of the box on RabbitMQ: late acks on durable queues (a killed worker's messages return "
        "when its connection closes), no publisher confirms, 20 retries from a 15 s backoff, no job states kept"
    ),
    max_attempts=21,
    retries_on=("Exception",),
    settings={},
)

QUEUE_CONFIGS: dict[str, dict[QueueConfigName, QueueConfig]] = {
    "redis": {"safe": SAFE, "defaults": DEFAULTS},
    "rabbitmq": {"safe": SAFE_RABBITMQ, "defaults": DEFAULTS_RABBITMQ},
}


def queue_config_for(settings: Settings) -> QueueConfig:
    return QUEUE_CONFIGS[settings.broker_name][settings.queue_config]
