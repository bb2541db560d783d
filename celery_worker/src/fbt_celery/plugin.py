"""The Celery runner as the project sees it: the one object registered under ``fbt.backends``."""

import json
from collections.abc import Mapping

from celery.app.defaults import DEFAULTS as CELERY_DEFAULTS

from fbt_celery.faults import FAULTS
from fbt_celery.queue_configs import QUEUE_CONFIGS, RESULTS_IN_REDIS, queue_config_for
from fbt_tasks.reference import JSONValue, Reference
from fbt_tasks.runner import BrokerName, FaultModel, PublishedDrain, QueueConfig, QueueConfigName
from fbt_tasks.scripts import console_script, python_module
from fbt_tasks.settings import Settings
from fbt_tasks.worker_runner import WorkerRunner


class CeleryRunner(WorkerRunner):
    name = "celery"
    display_name = "Celery"
    description = "Celery workers (prefork pool), JSON only; a Redis result backend in the safe queue config"
    brokers: tuple[BrokerName, ...] = ("redis", "rabbitmq")
    distributions = ("celery", "kombu")
    queue_configs: Mapping[str, Mapping[QueueConfigName, QueueConfig]] = QUEUE_CONFIGS
    faults: FaultModel = FAULTS
    backend_class = "fbt_celery.backend:CeleryBackend"
    ready_check = "fbt_celery.health:worker_ready"
    # As issue #12 quotes them; their conditions, not this machine's (the report compares orders only).
    published_drains: tuple[PublishedDrain, ...] = (
        PublishedDrain(
            "steventen/python_queue_benchmark",
            20000,
            "10 workers",
            "jobs of that benchmark's own task",
            11.7,
            "Celery threads pool",
        ),
    )

    def slot_layout(self, settings: Settings) -> str:
        prefetch = queue_config_for(settings).value(
            "worker_prefetch_multiplier", CELERY_DEFAULTS["worker_prefetch_multiplier"]
        )
        return f"{settings.slots} prefork processes, prefetch {prefetch} each"

    def reference(self, settings: Settings) -> Reference:
        from fbt_celery.worker import worker_argv

        argv = worker_argv(settings)
        # The project's worker command (prefork, concurrency = slots), on Celery's minimal app; its own node
        # name, so the project's health check (fbt-celery-*) never counts it.
        argv[argv.index("-A") + 1] = "fbt_celery.reference"
        argv[argv.index("--hostname") + 1] = "fbt-reference@%h"
        options = reference_options(settings)
        return Reference(
            workers=((*console_script("celery", "celery"), *argv),),
            enqueue=python_module("fbt_celery.reference", "enqueue"),
            layout=self.slot_layout(settings),
            options=options,
            without_status_writes=without_status_writes(options),
        )


# Settings of the project's app that only its API uses: the producer pool is sized to the API's threads and
# its wait bounded by the socket timeout (app.py). The URLs come as their own variables (reference_env).
API_ONLY = frozenset({"broker_url", "broker_pool_limit", "broker_pool_acquire_timeout"})


def reference_options(settings: Settings) -> dict[str, JSONValue]:
    """The Celery settings in force for this queue config, as the reference worker applies them.

    Everything ``celery_config`` sets (serializers, late ack, prefetch, STARTED, result expiry, transport
    options such as the visibility timeout and confirms, socket timeouts) but the API-only ones, with the
    result backend named as the queue config names it (the reference gets the URL as FBT_REF_REDIS_URL);
    none where the queue config keeps none (``defaults``, as Celery ships).
    Task-level options (``Task.autoretry_for``, ``max_retries``, backoff, jitter) are left out: they act
    only on a failed attempt, and the reference's task does not fail.
    """
    from fbt_celery.app import celery_config

    config = {key: value for key, value in celery_config(settings).items() if key not in API_ONLY}
    if config.get("result_backend"):
        config["result_backend"] = RESULTS_IN_REDIS  # never the URL: it may hold a password
    loaded: dict[str, JSONValue] = json.loads(json.dumps(config))  # JSON values only, or fail here
    return loaded


# The settings the queue config adds for GET /jobs/{id} that Celery does not make by default (no result
# backend, no STARTED state): the reference drains without them too, so the report shows their cost. None
# where the queue config makes neither (``defaults``): its options already are Celery's.
STATUS_WRITES = ("result_backend", "task_track_started")


def without_status_writes(options: dict[str, JSONValue]) -> dict[str, JSONValue] | None:
    if not any(options.get(key) for key in STATUS_WRITES):
        return None
    return {key: value for key, value in options.items() if key not in STATUS_WRITES}


RUNNER = CeleryRunner()
