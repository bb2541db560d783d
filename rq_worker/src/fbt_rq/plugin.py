"""The RQ runner as the project sees it: the one object registered under ``fbt.backends``."""

from collections.abc import Mapping

from fbt_rq.faults import FAULTS
from fbt_rq.queue_configs import QUEUE_CONFIGS
from fbt_tasks.backend import Backend
from fbt_tasks.runner import BrokerName, FaultModel, PublishedDrain, QueueConfig, QueueConfigName
from fbt_tasks.settings import Settings


class RQRunner:
    name = "rq"
    display_name = "RQ"
    description = "RQ (Redis Queue) workers, one job at a time each, JSON serializer"
    brokers: tuple[BrokerName, ...] = ("redis",)
    runs_in_api = False
    distributions = ("rq",)
    queue_configs: Mapping[str, Mapping[QueueConfigName, QueueConfig]] = {"redis": QUEUE_CONFIGS}
    faults: FaultModel = FAULTS
    # As issue #12 quotes them; their conditions, not this machine's (the report compares orders only).
    published_drains: tuple[PublishedDrain, ...] = (
        PublishedDrain(
            "steventen/python_queue_benchmark", 20000, "10 workers", "jobs of that benchmark's own task", 51.0
        ),
        PublishedDrain("SAQ README", 1000, "as in the README", "no-op jobs", 15.1),
    )

    def backend(self, settings: Settings) -> Backend:
        from fbt_rq.backend import RQBackend

        return RQBackend(settings)

    def worker_command(self, settings: Settings) -> list[str] | None:
        return ["fbt-worker-rq"]

    def worker_ready(self, settings: Settings) -> bool:
        from fbt_rq.health import worker_ready

        return worker_ready(settings)

    def slot_layout(self, settings: Settings) -> str:
        # fbt_rq.worker: one `rq worker` process per slot (exec'd directly when there is only one).
        if settings.rq_worker_mode == "fork":
            return f"{settings.slots} forking workers, one job at a time"
        return f"{settings.slots} simple workers, one job at a time, in the worker process"


RUNNER = RQRunner()
