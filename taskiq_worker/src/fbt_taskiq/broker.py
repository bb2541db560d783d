"""The taskiq broker for the configuration in force: its class, its result backend, its retry middleware.

JSON everywhere: taskiq's brokers serialize messages with its JSONSerializer by default, but taskiq-redis's
result backend defaults to its PickleSerializer, so the backend is given the JSON one.
"""

from taskiq import AsyncBroker, SimpleRetryMiddleware
from taskiq.serializers import JSONSerializer
from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend, RedisStreamBroker

from fbt_taskiq.idle_reclaim import IdleReclaimStreamBroker
from fbt_taskiq.queue_configs import (
    CONSUMER_GROUP,
    QUEUE_NAME,
    RESULT_BACKEND_OPTIONS,
    RESULT_PREFIX,
    WORKER_CLIENT_NAME,
    broker_class,
    queue_config_for,
    reclaim_interval_s,
    retry_options,
    stream_options,
)
from fbt_tasks.retry import resolve
from fbt_tasks.settings import Settings


def build_broker(settings: Settings) -> AsyncBroker:
    """The broker the worker listens on; the API only borrows its formatter (see fbt_taskiq.wire)."""
    config = queue_config_for(settings)
    # Named connections (client_name): the health check finds a live worker in Redis's CLIENT LIST by it.
    broker: AsyncBroker
    if broker_class(config) == "RedisStreamBroker":
        stream = dict(
            queue_name=QUEUE_NAME,
            consumer_group_name=CONSUMER_GROUP,
            client_name=WORKER_CLIENT_NAME,
            **stream_options(config, settings),
        )
        interval = reclaim_interval_s(config)
        broker = (
            RedisStreamBroker(settings.redis_url, **stream)
            if interval is None
            else IdleReclaimStreamBroker(settings.redis_url, reclaim_interval_s=interval, **stream)
        )
    else:
        broker = ListQueueBroker(settings.redis_url, queue_name=QUEUE_NAME, client_name=WORKER_CLIENT_NAME)
    results: RedisAsyncResultBackend[object] = RedisAsyncResultBackend(
        settings.redis_url,
        serializer=JSONSerializer(),
        prefix_str=RESULT_PREFIX,
        client_name=WORKER_CLIENT_NAME,
        **RESULT_BACKEND_OPTIONS,
    )
    broker = broker.with_result_backend(results)
    if options := retry_options(config):
        errors = resolve(list(options.pop("types_of_exceptions")))
        broker = broker.with_middlewares(SimpleRetryMiddleware(types_of_exceptions=errors, **options))
    return broker
