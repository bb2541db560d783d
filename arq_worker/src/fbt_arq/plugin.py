"""The arq runner as the project sees it: the one object registered under ``fbt.backends``."""

from collections.abc import Mapping

from fbt_arq.faults import FAULTS
from fbt_arq.queue_configs import QUEUE_CONFIGS
from fbt_tasks.reference import Reference
from fbt_tasks.runner import BrokerName, FaultModel, PublishedDrain, QueueConfig, QueueConfigName
from fbt_tasks.scripts import console_script, python_module
from fbt_tasks.settings import Settings
from fbt_tasks.worker_runner import WorkerRunner


class ArqRunner(WorkerRunner):
    name = "arq"
    display_name = "arq"
    description = (
        "arq (asyncio, in maintenance-only mode upstream) workers, concurrent jobs per process, JSON"
    )
    brokers: tuple[BrokerName, ...] = ("redis",)
    distributions = ("arq", "redis")
    queue_configs: Mapping[str, Mapping[QueueConfigName, QueueConfig]] = {"redis": QUEUE_CONFIGS}
    faults: FaultModel = FAULTS
    backend_class = "fbt_arq.backend:ArqBackend"
    ready_check = "fbt_arq.health:worker_ready"
    # As issue #12 quotes them; their conditions, not this machine's (the report compares orders only).
    published_drains: tuple[PublishedDrain, ...] = (
        PublishedDrain("streaq benchmark", 20000, "10 worker processes", "no-op tasks", 28.1),
        PublishedDrain("SAQ README", 1000, "as in the README", "no-op jobs", 5.0),
    )

    def slot_layout(self, settings: Settings) -> str:
        # fbt_arq.worker: WORKER_PROCESSES `arq` processes, each running max_jobs = WORKER_THREADS jobs at once.
        return (
            f"{settings.worker_processes} arq worker processes x {settings.worker_threads} concurrent jobs "
            "(max_jobs) each, as asyncio tasks"
        )

    def reference(self, settings: Settings) -> Reference:
        # The project's layout without its supervisor: WORKER_PROCESSES `arq` processes (arq/__main__.py makes
        # `python -m arq` the CLI), each with the queue config's Worker options, max_jobs = WORKER_THREADS.
        from fbt_arq.worker_settings import worker_options

        worker = (*console_script("arq", "arq"), "fbt_arq.reference.WorkerSettings")
        return Reference(
            workers=(worker,) * settings.worker_processes,
            enqueue=python_module("fbt_arq.reference", "enqueue"),
            layout=self.slot_layout(settings),
            options=worker_options(settings),
        )


RUNNER = ArqRunner()
