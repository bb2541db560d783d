"""The arq runner as the project sees it: the one object registered under ``fbt.backends``."""

from collections.abc import Mapping

from fbt_arq.faults import FAULTS
from fbt_arq.queue_configs import QUEUE_CONFIGS
from fbt_tasks.backend import Backend
from fbt_tasks.reference import Reference, console_script, python_module
from fbt_tasks.runner import BrokerName, FaultModel, PublishedDrain, QueueConfig, QueueConfigName
from fbt_tasks.settings import Settings


class ArqRunner:
    name = "arq"
    display_name = "arq"
    description = (
        "arq (asyncio, in maintenance-only mode upstream) workers, concurrent jobs per process, JSON"
    )
    brokers: tuple[BrokerName, ...] = ("redis",)
    runs_in_api = False
    distributions = ("arq", "redis")
    queue_configs: Mapping[str, Mapping[QueueConfigName, QueueConfig]] = {"redis": QUEUE_CONFIGS}
    faults: FaultModel = FAULTS
    # As issue #12 quotes them; their conditions, not this machine's (the report compares orders only).
    published_drains: tuple[PublishedDrain, ...] = (
        PublishedDrain("streaq benchmark", 20000, "10 worker processes", "no-op tasks", 28.1),
        PublishedDrain("SAQ README", 1000, "as in the README", "no-op jobs", 5.0),
    )

    def backend(self, settings: Settings) -> Backend:
        from fbt_arq.backend import ArqBackend

        return ArqBackend(settings)

    def worker_command(self, settings: Settings) -> list[str] | None:
        return ["fbt-worker-arq"]

    def worker_ready(self, settings: Settings) -> bool:
        from fbt_arq.health import worker_ready

        return worker_ready(settings)

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
