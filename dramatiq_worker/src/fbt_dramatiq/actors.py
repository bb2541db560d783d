"""One Dramatiq actor per task kind, ``fbt.<kind>``, all running the shared ``run_job``."""

from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from fbt_tasks.jobs import TASKS, run_job
from fbt_tasks.retry import resolve

# Dramatiq's default queue; every actor shares it so the slots are shared the same way as in other runners.
QUEUE_NAME = "default"


def actor_name(kind: str) -> str:
    return f"fbt.{kind}"


def perform(message: dict[str, Any]) -> Any:
    """The body of every actor: the job envelope in, ``run_job`` with Dramatiq's attempt number."""
    current = CurrentMessage.get_current_message()
    # The Retries middleware counts retries in the message options; a redelivery after a crash is not one.
    retries = current.options.get("retries", 0) if current is not None else 0
    return run_job(message, attempt=retries + 1)


def retry_when(errors: tuple[type[BaseException], ...], max_retries: int) -> Callable[[int, Exception], bool]:
    """Dramatiq's ``retry_when`` predicate: retry ``errors`` only, and no more than ``max_retries`` times.

    With retry_when set, the Retries middleware ignores max_retries, so the predicate checks both.
    """

    def should_retry(retries_so_far: int, exception: Exception) -> bool:
        return retries_so_far < max_retries and isinstance(exception, errors)

    return should_retry


def actor_options(options: dict[str, Any]) -> dict[str, Any]:
    """The queue config's actor options as Dramatiq takes them: ``retry_when`` names become a predicate."""
    options = dict(options)
    if "retry_when" in options:
        options["retry_when"] = retry_when(resolve(options["retry_when"]), options.get("max_retries", 20))
    return options


def declare_actors(broker: dramatiq.Broker, options: dict[str, Any]) -> dict[str, dramatiq.Actor]:
    """Declare ``fbt.<kind>`` for every kind on ``broker`` with the queue config's actor options.

    ``store_results`` / ``result_ttl`` among them need the Results middleware on ``broker`` (Dramatiq refuses
    an actor option no middleware declares); Results stores a failure only once retries ran out.
    """
    options = actor_options(options)
    return {
        # dramatiq.actor(fn, **options) at runtime; its overloads type only the decorator-factory form.
        kind: dramatiq.actor(
            broker=broker,
            actor_name=actor_name(kind),
            queue_name=QUEUE_NAME,
            **options,
        )(perform)
        for kind in TASKS
    }
