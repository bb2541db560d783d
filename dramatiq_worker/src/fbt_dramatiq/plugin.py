"""The Dramatiq runner as the project sees it: the one object registered under ``fbt.backends``."""

from collections.abc import Mapping

from fbt_dramatiq.faults import FAULTS
from fbt_dramatiq.queue_configs import QUEUE_CONFIGS
from fbt_tasks.backend import Backend
from fbt_tasks.runner import BrokerName, FaultModel, PublishedDrain, QueueConfig, QueueConfigName
from fbt_tasks.settings import Settings


class DramatiqRunner:
    name = "dramatiq"
    display_name = "Dramatiq"
    description = "Dramatiq workers (processes x threads), late acks, JSON"
    brokers: tuple[BrokerName, ...] = ("redis", "rabbitmq")
    runs_in_api = False
    distributions = ("dramatiq",)
    queue_configs: Mapping[str, Mapping[QueueConfigName, QueueConfig]] = QUEUE_CONFIGS
    faults: FaultModel = FAULTS
    published_drains: tuple[PublishedDrain, ...] = ()

    def backend(self, settings: Settings) -> Backend:
        from fbt_dramatiq.backend import DramatiqBackend

        return DramatiqBackend(settings)

    def worker_command(self, settings: Settings) -> list[str] | None:
        return ["fbt-worker-dramatiq"]

    def worker_ready(self, settings: Settings) -> bool:
        from fbt_dramatiq.health import worker_ready

        return worker_ready(settings)

    def slot_layout(self, settings: Settings) -> str:
        return f"{settings.worker_processes} processes x {settings.worker_threads} threads"


RUNNER = DramatiqRunner()
