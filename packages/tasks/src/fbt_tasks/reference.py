"""A runner's fidelity reference, as the harness sees it: its library's own minimal worker.

The harness drains the same N jobs through the runner and through its reference, at the same slot layout and
on the same broker, in the same repeat, and records project ÷ reference (``extra.fidelity`` of a drain
record). The reference's worker path is the library's own CLI, its own client, and a task doing the two
appends of the project's ``write_log`` job (``fbt_tasks.reference_task``), so what separates the two figures
is the project's code on the runner's path.

It takes the library options of the queue config in force (``options``, passed as JSON), so the check
compares the project with the library configured the same way; a queue config's own cost is the
configuration table's to show, not the fidelity figure's.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fbt_tasks.reference_task import (
    BROKER_URL_ENV,
    LEDGER_FILE_ENV,
    LOG_FILE_ENV,
    OPTIONS_ENV,
    QUEUE_ENV,
    REDIS_URL_ENV,
)

if TYPE_CHECKING:
    from fbt_tasks.settings import Settings

# A queue of its own: nothing the runner left behind is ever drained by the reference, or the reverse.
REFERENCE_QUEUE = "fbt-reference"

# JSON values only: the options cross a process boundary as FBT_REF_OPTIONS.
JSONValue = str | int | float | bool | None | list["JSONValue"] | dict[str, "JSONValue"]


@dataclass(frozen=True, slots=True)
class Reference:
    """How to run one library's minimal worker for the settings in force."""

    # One argv per worker process the harness starts (and SIGTERMs when the drain is done).
    workers: tuple[tuple[str, ...], ...]
    # Enqueues jobs with the library's own client: the harness appends ``--n N``; it prints one JSON line
    # (``reference_task.emit``): the ids now queued and the CPU per enqueue.
    enqueue: tuple[str, ...]
    # How it spends the slots, in the words of ``Runner.slot_layout`` ("8 prefork processes, prefetch 1").
    layout: str
    # The library options taken from the queue config in force (empty: the library's defaults).
    options: Mapping[str, JSONValue] = field(default_factory=dict)
    # The same options without the per-task state writes the queue config adds for GET /jobs/{id} (a result
    # store, a STARTED mark) where the library makes none by default; None where it adds none. The harness
    # drains the reference both ways, so the configuration table shows what those writes cost.
    without_status_writes: Mapping[str, JSONValue] | None = None


def reference_env(
    settings: "Settings", reference: Reference, log_file: Path, options: Mapping[str, JSONValue] | None = None
) -> dict[str, str]:
    """The variables the reference's workers and enqueue script read (``fbt_tasks.reference_task``);
    ``options`` replaces the reference's own (its variant without the job-status writes)."""
    broker_url = settings.amqp_url if settings.broker_name == "rabbitmq" else settings.redis_url
    return {
        BROKER_URL_ENV: broker_url,
        REDIS_URL_ENV: settings.redis_url,
        LOG_FILE_ENV: str(log_file),
        LEDGER_FILE_ENV: str(settings.ledger_file),
        OPTIONS_ENV: json.dumps(dict(reference.options if options is None else options)),
        QUEUE_ENV: REFERENCE_QUEUE,
    }
