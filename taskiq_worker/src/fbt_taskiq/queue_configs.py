"""The two queue configs (QUEUE_CONFIG), read from taskiq 0.13's and taskiq-redis 1.2's source.

safe: ``RedisStreamBroker``. A worker reads messages with XREADGROUP into its consumer's pending list and
acknowledges (XACK) each only after its result is saved (``--ack-type when_saved``, taskiq's default), so a
SIGKILLed worker's messages stay pending. Another consumer takes them over with XAUTOCLAIM once they have been
idle ``idle_timeout`` ms; taskiq-redis runs that XAUTOCLAIM only after an XREADGROUP that returned new
messages (``RedisStreamBroker.listen``: an empty read ``continue``s past it), so on an idle queue a killed
worker's messages would never come back. The safe config's worker runs the same XAUTOCLAIM after an empty read
too, every ``reclaim_interval_s`` at most (``fbt_taskiq.idle_reclaim``), until upstream's own fix ships.

defaults: ``ListQueueBroker``, the broker taskiq-redis's own example starts with: LPUSH and BRPOP. The
message is gone from Redis once a worker popped it; its README: "If during message processing Worker was
suddenly killed the message is going to be lost."

Retries are a middleware in taskiq (no retry at all by default). ``SimpleRetryMiddleware`` re-kicks a
failed task at once with the same task id; ``SmartRetryMiddleware``'s delay needs a schedule source and a
``taskiq scheduler`` process (the Redis brokers ignore a ``delay`` label), which this runner does not run.
"""

from typing import Any, Literal

from fbt_tasks.reference import JSONValue
from fbt_tasks.retry import TRANSIENT_ERROR_NAMES
from fbt_tasks.runner import QueueConfig, QueueConfigName, Setting
from fbt_tasks.settings import Settings

BrokerClass = Literal["RedisStreamBroker", "ListQueueBroker"]

# The stream (safe) or list (defaults) key, namespaced like taskiq's default ("taskiq") since every runner
# shares one Redis in compose; and the stream's consumer group.
QUEUE_NAME = "taskiq:fbt"
CONSUMER_GROUP = "fbt"
# Results live under "<prefix>:<task id>": /jobs/{id} reads them, so the key layout is ours to name.
RESULT_PREFIX = "fbt-taskiq-result"
# Keep results an hour, as for RQ: taskiq-redis keeps them forever unless told (its README recommends a TTL).
RESULT_TTL_S = 3600
# RedisAsyncResultBackend's options in both queue configs (fbt_taskiq.broker adds the JSON serializer).
RESULT_BACKEND_OPTIONS: dict[str, Any] = {
    "keep_results": True,  # /jobs/{id} reads a result any number of times
    "result_ex_time": RESULT_TTL_S,
}
# Every connection a worker opens carries this name (CLIENT SETNAME): health reads CLIENT LIST for it.
WORKER_CLIENT_NAME = "fbt-taskiq-worker"

SAFE = QueueConfig(
    name="safe",
    summary=(
        "Redis Streams broker acked after the result is saved, so a killed worker's messages stay pending; "
        "a live worker reclaims them once idle 60 s, with or without new work; transient errors get 3 "
        "attempts, re-sent at once"
    ),
    max_attempts=3,
    retries_on=TRANSIENT_ERROR_NAMES,
    settings={
        "broker": Setting(
            "RedisStreamBroker",
            'taskiq-redis README: the Stream broker "supports acknowledgements and therefore is fine to use in '
            'cases when data durability is required"; the list broker does not',
        ),
        "ack_type": Setting(
            "when_saved",
            "taskiq's default, named: XACK only after the task ran and its result was written, so a worker "
            "killed mid-task leaves the message pending instead of acknowledged",
        ),
        "RedisStreamBroker.idle_timeout": Setting(
            60_000,
            "XAUTOCLAIM takes over a message pending this many ms (default 10 min, past any run's watch); 60 s "
            "still exceeds the slowest task (an email waiting out a send-once lease), so a live worker's job "
            "is not taken from it",
        ),
        "RedisStreamBroker.consumer_id": Setting(
            "0",
            'the group reads the stream from its start; the default "$" skips every message enqueued before '
            "the first worker created the group",
        ),
        "RedisStreamBroker.xread_count": Setting(
            "max-async-tasks",
            "one XREADGROUP claims at most as many messages as the process runs at once (default 100), so a "
            "killed process held no more than its slots' worth",
        ),
        "RedisStreamBroker.unacknowledged_lock_timeout": Setting(
            10.0,
            "the reclaim lock expires by itself (default: never), so a worker killed while holding it cannot "
            "stop every other worker's reclaim (taskiq-redis#131)",
        ),
        "reclaim_interval_s": Setting(
            5.0,
            "taskiq-redis reclaims only after a read that returned new messages, so on an idle queue a killed "
            "worker's messages stayed pending for good; the worker also reclaims after an empty read, at most "
            "this often (fbt_taskiq.idle_reclaim, as the open taskiq-redis#129 proposes upstream)",
        ),
        "SimpleRetryMiddleware.default_retry_count": Setting(
            3,
            "3 attempts in all, as for Celery, RQ and Dramatiq; taskiq retries nothing without a middleware",
        ),
        "SimpleRetryMiddleware.default_retry_label": Setting(
            True, "every task retries, without a retry_on_error label on each message"
        ),
        "SimpleRetryMiddleware.types_of_exceptions": Setting(
            list(TRANSIENT_ERROR_NAMES),
            "only errors that may pass by themselves (fbt_tasks.retry); a bad header fails at once",
        ),
    },
)

DEFAULTS = QueueConfig(
    name="defaults",
    summary=(
        "ListQueueBroker as taskiq-redis's example starts: BRPOP removes the message, so a killed worker's "
        "jobs are lost; no retry middleware, so a failing job runs once"
    ),
    max_attempts=1,
    settings={
        "broker": Setting(
            "ListQueueBroker",
            "the README's starting example and the broker it names for when you do not want acknowledgements",
        ),
    },
)

QUEUE_CONFIGS: dict[QueueConfigName, QueueConfig] = {"safe": SAFE, "defaults": DEFAULTS}


def queue_config_for(settings: Settings) -> QueueConfig:
    return QUEUE_CONFIGS[settings.queue_config]


def broker_class(config: QueueConfig) -> BrokerClass:
    found: BrokerClass = config.value("broker")
    return found


def stream_options(config: QueueConfig, settings: Settings) -> dict[str, Any]:
    """The RedisStreamBroker arguments this config sets, with max-async-tasks resolved to the slots."""
    options = config.options("RedisStreamBroker")
    if options.get("xread_count") == "max-async-tasks":
        options["xread_count"] = settings.worker_threads
    return options


def reclaim_interval_s(config: QueueConfig) -> float | None:
    """How often an idle worker reclaims a dead consumer's messages; None: only as taskiq-redis does."""
    found: float | None = config.value("reclaim_interval_s")
    return found


def retry_options(config: QueueConfig) -> dict[str, Any]:
    return config.options("SimpleRetryMiddleware")


def library_options(settings: Settings) -> dict[str, JSONValue]:
    """The taskiq options in force as JSON, for the fidelity reference (``fbt_taskiq.reference``): the broker
    class and its arguments, the result backend's and the retry middleware's, as ``build_broker`` applies them.
    The stream's naming (queue, consumer group, client name) is the reference's own."""
    config = queue_config_for(settings)
    chosen: dict[str, JSONValue] = {"broker": broker_class(config)}
    if broker_class(config) == "RedisStreamBroker":
        chosen["RedisStreamBroker"] = stream_options(config, settings)
    chosen["RedisAsyncResultBackend"] = dict(RESULT_BACKEND_OPTIONS)
    if retries := retry_options(config):
        chosen["SimpleRetryMiddleware"] = {
            **retries,
            "types_of_exceptions": list(retries["types_of_exceptions"]),
        }
    return chosen
