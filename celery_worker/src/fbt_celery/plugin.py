"""The Celery runner as the project sees it: the one object registered under ``fbt.backends``."""

from collections.abc import Mapping

from celery.app.defaults import DEFAULTS as CELERY_DEFAULTS

from fbt_celery.faults import FAULTS
from fbt_celery.queue_configs import QUEUE_CONFIGS, queue_config_for
from fbt_tasks.backend import Backend
from fbt_tasks.runner import BrokerName, FaultModel, PublishedDrain, QueueConfig, QueueConfigName
from fbt_tasks.settings import Settings


class CeleryRunner:
    name = "celery"
    display_name = "Celery"
    description = "Celery workers (prefork pool), Redis result backend, JSON only"
    brokers: tuple[BrokerName, ...] = ("redis", "rabbitmq")
    runs_in_api = False
    distributions = ("celery", "kombu")
    queue_configs: Mapping[str, Mapping[QueueConfigName, QueueConfig]] = QUEUE_CONFIGS
    faults: FaultModel = FAULTS
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

    def backend(self, settings: Settings) -> Backend:
        from fbt_celery.backend import CeleryBackend

        return CeleryBackend(settings)

    def worker_command(self, settings: Settings) -> list[str] | None:
        return ["fbt-worker-celery"]

    def worker_ready(self, settings: Settings) -> bool:
        from fbt_celery.health import worker_ready

        return worker_ready(settings)

    def slot_layout(self, settings: Settings) -> str:
        prefetch = queue_config_for(settings).value(
            "worker_prefetch_multiplier", CELERY_DEFAULTS["worker_prefetch_multiplier"]
        )
        return f"{settings.slots} prefork processes, prefetch {prefetch} each"


RUNNER = CeleryRunner()
