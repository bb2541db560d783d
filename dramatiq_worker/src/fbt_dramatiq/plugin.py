"""The Dramatiq runner as the project sees it: the one object registered under ``fbt.backends``."""

from collections.abc import Mapping

from fbt_dramatiq.faults import FAULTS
from fbt_dramatiq.queue_configs import (
    ACTOR,
    BROKER,
    MARK_STARTED,
    QUEUE_CONFIGS,
    RABBITMQ_BROKER,
    queue_config_for,
)
from fbt_tasks.reference import JSONValue, Reference
from fbt_tasks.runner import BrokerName, FaultModel, PublishedDrain, QueueConfig, QueueConfigName
from fbt_tasks.scripts import console_script, python_module
from fbt_tasks.settings import Settings
from fbt_tasks.worker_runner import WorkerRunner

# The actor options the reference takes: the ones that act on a job that succeeds. TimeLimit arms a timer for
# every message; store_results / result_ttl add Dramatiq's Results middleware and its write per job. Left out:
# max_retries, retry_when, min_backoff and max_backoff, which the Retries middleware reads only after an
# actor raised (retry_when also names project errors the reference may not import), and the workers' Redis
# client's ride_out_s, a redis-py retry that costs nothing while commands succeed.
SUCCESS_PATH_ACTOR_OPTIONS = ("time_limit", "store_results", "result_ttl")


class DramatiqRunner(WorkerRunner):
    name = "dramatiq"
    display_name = "Dramatiq"
    description = "Dramatiq workers (processes x threads), late acks, JSON"
    brokers: tuple[BrokerName, ...] = ("redis", "rabbitmq")
    distributions = ("dramatiq",)
    queue_configs: Mapping[str, Mapping[QueueConfigName, QueueConfig]] = QUEUE_CONFIGS
    faults: FaultModel = FAULTS
    backend_class = "fbt_dramatiq.backend:DramatiqBackend"
    ready_check = "fbt_dramatiq.health:worker_ready"
    published_drains: tuple[PublishedDrain, ...] = ()

    def slot_layout(self, settings: Settings) -> str:
        return f"{settings.worker_processes} processes x {settings.worker_threads} threads"

    def reference(self, settings: Settings) -> Reference | None:
        """Dramatiq's own CLI and ``actor.send`` (``fbt_dramatiq.reference``), at the same processes x
        threads, configured like the queue config in force."""
        argv = (
            *console_script("dramatiq", "dramatiq"),
            "fbt_dramatiq.reference",
            "--processes",
            str(settings.worker_processes),
            "--threads",
            str(settings.worker_threads),
        )
        options = reference_options(settings)
        return Reference(
            workers=(argv,),
            enqueue=python_module("fbt_dramatiq.reference", "enqueue"),
            layout=self.slot_layout(settings),
            options=options,
            without_status_writes=without_status_writes(options),
        )


def reference_options(settings: Settings) -> dict[str, JSONValue]:
    """FBT_REF_OPTIONS for ``fbt_dramatiq.reference``: what the queue config in force sets on the success path.

    ``broker``: the broker's keyword options (heartbeat_timeout and maintenance_chance on Redis, which decide
    the work of every dispatch.lua call; confirm_delivery on RabbitMQ, a wait per publish); ``actor``: see
    SUCCESS_PATH_ACTOR_OPTIONS; ``mark_started``: the started mark's SET per attempt, where it is kept.
    """
    queue = queue_config_for(settings)
    broker = queue.options(RABBITMQ_BROKER if settings.broker_name == "rabbitmq" else BROKER)
    actor = {key: value for key, value in queue.options(ACTOR).items() if key in SUCCESS_PATH_ACTOR_OPTIONS}
    options: dict[str, JSONValue] = {"broker": broker, "actor": actor}
    started = queue.options(MARK_STARTED)
    if started:
        options["mark_started"] = started
    return options


# What the queue config adds for GET /jobs/{id} that Dramatiq does not write by default: the Results
# middleware's write per job (store_results, result_ttl) and the started mark. The reference drains without
# them too, so the report shows their cost.
STATUS_ACTOR_OPTIONS = ("store_results", "result_ttl")


def without_status_writes(options: dict[str, JSONValue]) -> dict[str, JSONValue] | None:
    actor = options.get("actor")
    actor = actor if isinstance(actor, dict) else {}
    if not (actor.get("store_results") or options.get("mark_started")):
        return None
    kept = {key: value for key, value in actor.items() if key not in STATUS_ACTOR_OPTIONS}
    return {**{key: value for key, value in options.items() if key != "mark_started"}, "actor": kept}


RUNNER = DramatiqRunner()
