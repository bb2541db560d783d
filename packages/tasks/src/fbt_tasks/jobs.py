"""The job envelope every runner carries, and ``run_job``, the one place a task is executed.

Runners call ``run_job`` from their task/actor/job function; it dispatches to the plain task
function and records a completion event. No runner contains task logic of its own.
"""

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Any

from fbt_tasks import ledger
from fbt_tasks.images import resize_image
from fbt_tasks.logfile import notify, write_log
from fbt_tasks.mailer import send_email
from fbt_tasks.settings import get_settings

TASKS: dict[str, Callable[..., Any]] = {
    "send_email": send_email,
    "write_log": write_log,
    "notify": notify,
    "resize_image": resize_image,
}


class JobState(StrEnum):
    queued = "queued"
    started = "started"
    succeeded = "succeeded"
    failed = "failed"


@dataclass(frozen=True, slots=True)
class Job:
    kind: str
    payload: dict[str, Any]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    enqueued_at: float = field(default_factory=time.time)

    def to_message(self) -> dict[str, Any]:
        """The JSON-safe form sent through every broker (no pickle anywhere)."""
        return asdict(self)

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> "Job":
        return cls(**message)


def run_job(message: dict[str, Any], attempt: int = 1) -> Any:
    """Execute one job and record its completion; exceptions propagate so the runner can retry.

    A task returns False exactly when it turned the attempt away because its effect was already done
    (``send_email`` under the send-once guard); the ledger records that as ``skipped``, the return value
    is passed on unchanged.
    """
    # The envelope is read by key rather than rebuilt as a Job: that frozen dataclass costs more than the task.
    with Recorded(message, attempt) as recorded:
        return recorded.returned(TASKS[message["kind"]](**message["payload"]))


class Recorded:
    """Records one attempt's ledger event when it ends, however it ends: ``run_job`` and its async twin
    (``fbt_tasks.aio.run_job_async``) both run their task inside one, so the event is built in one place.

    A message without a ``kind`` fails before its task runs (no event); the exception of a failed task
    propagates unchanged so the runner can retry.
    """

    __slots__ = ("attempt", "kind", "message", "skipped", "started")

    def __init__(self, message: dict[str, Any], attempt: int) -> None:
        self.message, self.attempt, self.kind = message, attempt, message["kind"]
        self.skipped = False

    def __enter__(self) -> "Recorded":
        self.started = time.time()
        return self

    def returned(self, result: Any) -> Any:
        """The task's return value, passed on; False means it turned the attempt away as already done."""
        self.skipped = result is False
        return result

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        message = self.message
        # The fields of ledger.CompletionEvent, in its order; the event object itself is only needed to read.
        event = {
            "id": message["id"],
            "kind": self.kind,
            "enqueued_at": message["enqueued_at"],
            "started_at": self.started,
            "finished_at": time.time(),
            "pid": os.getpid(),
            "attempt": self.attempt,
            "ok": exc is None,
            # A BaseException (a cancelled or interrupted attempt) fails the attempt without an error text.
            "error": f"{type(exc).__name__}: {exc}" if isinstance(exc, Exception) else None,
            "skipped": self.skipped,
        }
        ledger.record_fields(get_settings().ledger_file, event)
