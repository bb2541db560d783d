"""The RQ runner as the project sees it: the one object registered under ``fbt.backends``."""

from collections.abc import Mapping

from fbt_rq.faults import FAULTS
from fbt_rq.queue_configs import QUEUE_CONFIGS
from fbt_rq.settings import get_rq_settings
from fbt_tasks.reference import REFERENCE_QUEUE, JSONValue, Reference
from fbt_tasks.runner import BrokerName, FaultModel, PublishedDrain, QueueConfig, QueueConfigName
from fbt_tasks.scripts import console_script, python_module
from fbt_tasks.settings import Settings
from fbt_tasks.worker_runner import WorkerRunner


class RQRunner(WorkerRunner):
    name = "rq"
    display_name = "RQ"
    description = "RQ (Redis Queue) workers, one job at a time each, JSON serializer"
    brokers: tuple[BrokerName, ...] = ("redis",)
    distributions = ("rq",)
    queue_configs: Mapping[str, Mapping[QueueConfigName, QueueConfig]] = {"redis": QUEUE_CONFIGS}
    faults: FaultModel = FAULTS
    backend_class = "fbt_rq.backend:RQBackend"
    ready_check = "fbt_rq.health:worker_ready"
    # As issue #12 quotes them; their conditions, not this machine's (the report compares orders only).
    published_drains: tuple[PublishedDrain, ...] = (
        PublishedDrain(
            "steventen/python_queue_benchmark", 20000, "10 workers", "jobs of that benchmark's own task", 51.0
        ),
        PublishedDrain("SAQ README", 1000, "as in the README", "no-op jobs", 15.1),
    )

    def slot_layout(self, settings: Settings) -> str:
        # fbt_rq.worker: one `rq worker` process per slot (exec'd directly when there is only one).
        if get_rq_settings().worker_mode == "fork":
            return f"{settings.slots} forking workers, one job at a time"
        return f"{settings.slots} simple workers, one job at a time, in the worker process"

    def reference(self, settings: Settings) -> Reference | None:
        """``settings.slots`` plain ``rq worker`` processes, as fbt_rq.worker starts them, running
        ``fbt_rq.reference.write_log`` from the reference queue; jobs enqueued by ``python -m fbt_rq.reference``.

        What differs from the project's workers is only the project's code: ``--config fbt_rq.reference``
        (the reference's own job module, preloaded before the fork as fbt_rq.worker_settings preloads the
        project's) instead of fbt_rq.worker_settings, and no ``--exception-handler``: the safe config's handler
        is project code (fbt_rq.jobs), and it only runs on a failing job, which a reference job never is.
        """
        from fbt_rq.queue_configs import queue_config_for
        from fbt_rq.worker import library_arguments, worker_options

        config = queue_config_for(settings)
        # --url: the harness gives the reference only the FBT_REF_* variables, not RQ_REDIS_URL.
        argv = (
            *console_script("rq", "rq.cli"),
            "worker",
            "--url",
            settings.redis_url,
            "--config",
            "fbt_rq.reference",
            *library_arguments(settings),
            REFERENCE_QUEUE,
        )
        options: dict[str, JSONValue] = dict(worker_options(config))
        # The enqueue side of the queue config: the Retry every job carries (python -m fbt_rq.reference reads it).
        if (retry_max := config.value("Retry.max")) is not None:
            options["Retry.max"] = retry_max
            options["Retry.interval"] = list(config.value("Retry.interval", []))
        return Reference(
            workers=tuple(argv for _ in range(settings.slots)),
            enqueue=python_module("fbt_rq.reference", "enqueue"),
            layout=self.slot_layout(settings),
            options=options,
        )


RUNNER = RQRunner()
