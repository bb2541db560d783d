"""The completion ledger: one JSON line per finished task attempt, the same for every runner.

It is a plain append-only file rather than a Redis structure on purpose: recording a completion must
not put load on the broker being measured. Each event is one atomic O_APPEND write (see ``lines``),
so any number of worker processes and threads can record at once.
"""

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from fbt_tasks.lines import append_line


@dataclass(frozen=True, slots=True)
class CompletionEvent:
    id: str
    kind: str
    enqueued_at: float
    started_at: float
    finished_at: float
    pid: int
    attempt: int
    ok: bool
    error: str | None = None
    # The task found its effect already done and turned this attempt away (a redelivery the send-once guard
    # skipped): ok, and not a second effect.
    skipped: bool = False

    @property
    def end_to_end_s(self) -> float:
        return self.finished_at - self.enqueued_at


# One encoder for every line: json.dumps with non-default arguments builds a new one per call.
_to_json = json.JSONEncoder(separators=(",", ":")).encode
_FIELDS = tuple(f.name for f in fields(CompletionEvent))


def record(path: Path, event: CompletionEvent) -> None:
    # asdict() deep-copies every field through a recursive walk; the fields are flat scalars, so read them directly.
    record_fields(path, {name: getattr(event, name) for name in _FIELDS})


def record_fields(path: Path, event: dict[str, Any]) -> None:
    """Append an event given as the dict of CompletionEvent's fields, in their order (run_job's hot path)."""
    append_line(path, _to_json(event))


def read_events(path: Path) -> Iterator[CompletionEvent]:
    """Yield every event; a missing ledger is an empty one, an unparsable line is skipped (never counted)."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                yield CompletionEvent(**json.loads(line))
            except (ValueError, TypeError):
                continue
