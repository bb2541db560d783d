"""The SAQ runner as the project sees it: the one object registered under ``fbt.backends``."""

from collections.abc import Mapping

from fbt_saq.faults import FAULTS
from fbt_saq.queue_configs import QUEUE_CONFIGS, job_fields, worker_kwargs
from fbt_tasks.reference import JSONValue, Reference
from fbt_tasks.runner import BrokerName, FaultModel, PublishedDrain, QueueConfig, QueueConfigName
from fbt_tasks.scripts import console_script, python_module
from fbt_tasks.settings import Settings
from fbt_tasks.worker_runner import WorkerRunner


class SAQRunner(WorkerRunner):
    name = "saq"
    display_name = "SAQ"
    description = (
        "SAQ (Simple Async Queue) workers, concurrent async jobs on one event loop per process, JSON"
    )
    brokers: tuple[BrokerName, ...] = ("redis",)
    distributions = ("saq", "redis")
    queue_configs: Mapping[str, Mapping[QueueConfigName, QueueConfig]] = {"redis": QUEUE_CONFIGS}
    faults: FaultModel = FAULTS
    backend_class = "fbt_saq.backend:SAQBackend"
    ready_check = "fbt_saq.health:worker_ready"
    # As issue #12 quotes them; their conditions, not this machine's (the report compares orders only).
    published_drains: tuple[PublishedDrain, ...] = (
        PublishedDrain("streaq benchmark", 20000, "10 worker processes", "no-op tasks", 3.46),
        PublishedDrain("SAQ README", 1000, "as in the README", "no-op jobs", 0.41),
    )

    def slot_layout(self, settings: Settings) -> str:
        # fbt_saq.worker: WORKER_PROCESSES `saq` processes, each a Worker with concurrency WORKER_THREADS.
        return (
            f"{settings.worker_processes} processes x {settings.worker_threads} concurrent jobs "
            "(asyncio, SAQ Worker concurrency)"
        )

    def reference(self, settings: Settings) -> Reference | None:
        # SAQ's own worker (fbt_saq.reference) at this layout: WORKER_PROCESSES plain `saq` processes (the
        # project supervises its own with fbt-worker-saq), each with concurrency WORKER_THREADS, and the
        # Worker options and Job fields the queue config in force gives the project's workers and jobs.
        options: dict[str, JSONValue] = {
            "worker": {"concurrency": settings.worker_threads, **worker_kwargs(settings)},
            "job": dict(job_fields(settings)),
        }
        argv = (*console_script("saq", "saq"), "fbt_saq.reference.settings")
        return Reference(
            workers=tuple(argv for _ in range(settings.worker_processes)),
            enqueue=python_module("fbt_saq.reference", "enqueue"),
            layout=self.slot_layout(settings),
            options=options,
        )


RUNNER = SAQRunner()
