"""The taskiq runner as the project sees it: the one object registered under ``fbt.backends``."""

from collections.abc import Mapping

from fbt_taskiq.faults import FAULTS
from fbt_taskiq.queue_configs import QUEUE_CONFIGS, library_options
from fbt_taskiq.worker import worker_options
from fbt_tasks.reference import JSONValue, Reference
from fbt_tasks.runner import BrokerName, FaultModel, PublishedDrain, QueueConfig, QueueConfigName
from fbt_tasks.scripts import console_script, python_module
from fbt_tasks.settings import Settings
from fbt_tasks.worker_runner import WorkerRunner


class TaskiqRunner(WorkerRunner):
    name = "taskiq"
    display_name = "taskiq"
    description = "taskiq (taskiq-redis) async workers: processes x concurrent async tasks, JSON messages"
    brokers: tuple[BrokerName, ...] = ("redis",)
    distributions = ("taskiq", "taskiq-redis")
    queue_configs: Mapping[str, Mapping[QueueConfigName, QueueConfig]] = {"redis": QUEUE_CONFIGS}
    faults: FaultModel = FAULTS
    backend_class = "fbt_taskiq.backend:TaskiqBackend"
    ready_check = "fbt_taskiq.health:worker_ready"
    # As issue #12 quotes them; their conditions, not this machine's (the report compares orders only).
    published_drains: tuple[PublishedDrain, ...] = (
        PublishedDrain(
            "steventen/python_queue_benchmark", 20000, "10 workers", "jobs of that benchmark's own task", 2.03
        ),
        PublishedDrain("streaq benchmark", 20000, "10 worker processes", "no-op tasks", 3.26),
    )

    def slot_layout(self, settings: Settings) -> str:
        return (
            f"{settings.worker_processes} worker processes x {settings.worker_threads} concurrent async tasks "
            "each (taskiq --workers, --max-async-tasks)"
        )

    def reference(self, settings: Settings) -> Reference | None:
        """taskiq's own CLI over ``fbt_taskiq.reference:broker`` with the project worker's options, and the
        broker, result backend and retry options of the queue config in force."""
        worker = (*console_script("taskiq", "taskiq"), "worker", "fbt_taskiq.reference:broker")
        options = library_options(settings)
        return Reference(
            workers=((*worker, *worker_options(settings)),),
            enqueue=python_module("fbt_taskiq.reference", "enqueue"),
            layout=self.slot_layout(settings),
            options=options,
            without_status_writes=without_status_writes(options),
        )


# taskiq keeps no results by default; the project stores each task's result for GET /jobs/{id} (and the
# Streams broker acks when it is saved). The reference drains without that store too, so the report shows
# its cost.
STATUS_WRITES = "RedisAsyncResultBackend"


def without_status_writes(options: dict[str, JSONValue]) -> dict[str, JSONValue] | None:
    if STATUS_WRITES not in options:
        return None
    return {key: value for key, value in options.items() if key != STATUS_WRITES}


RUNNER = TaskiqRunner()
