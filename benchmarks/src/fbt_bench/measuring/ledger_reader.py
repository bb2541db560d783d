"""Count what actually finished, from the ledger the tasks write (never from what a runner claims).

A ``LedgerFollower`` tails the JSON-lines ledger incrementally and keeps, for the job ids of one scenario,
how many ``ok`` events each id got, which ids only failed, and each id's end-to-end latency
(``finished_at - enqueued_at`` of its first successful attempt). Lines of other scenarios are ignored.
"""

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from hdrh.histogram import HdrHistogram

from fbt_bench.measuring import stats
from fbt_tasks.ledger import CompletionEvent

POLL_S = 0.1


@dataclass(frozen=True, slots=True)
class LedgerTally:
    expected: int
    completed: int  # distinct ids with at least one ok event
    duplicated: int  # ids with more than one ok event: the task's effect ran twice
    failed: int  # ids whose attempts all failed so far
    missing: int  # expected ids with no ok event
    first_enqueued_at: float | None
    first_finished_at: float | None
    last_finished_at: float | None
    latency: HdrHistogram = field(repr=False)
    latency_by_kind: dict[str, HdrHistogram] = field(repr=False)

    @property
    def done(self) -> bool:
        return self.completed >= self.expected

    @property
    def span_s(self) -> float:
        """From the first job's enqueue to the last job's finish: the window the work occupied."""
        if self.first_enqueued_at is None or self.last_finished_at is None:
            return 0.0
        return max(self.last_finished_at - self.first_enqueued_at, 0.0)


class LedgerFollower:
    """Reads a ledger from a byte offset onwards, so polling a growing file costs only the new lines."""

    def __init__(self, path: Path, start_offset: int = 0, *, track_all: bool = False) -> None:
        self.path = Path(path)
        self._offset = start_offset
        # For a ledger private to one measurement whose job ids the harness never saw (the direct-call floor).
        self._track_all = track_all
        self._ids: set[str] = set()
        self._ok_counts: dict[str, int] = {}
        self._failed: set[str] = set()
        self._first_ok: dict[str, CompletionEvent] = {}
        self._buffered: dict[str, list[CompletionEvent]] = {}

    @classmethod
    def from_end(cls, path: Path) -> "LedgerFollower":
        """Follow only events written after now: earlier scenarios on the same ledger are skipped unread."""
        return cls(path, start_offset=os.path.getsize(path) if os.path.exists(path) else 0)

    def expect(self, job_ids: Iterable[str]) -> None:
        """Add ids to the set counted; events read before their id was known are applied now."""
        for job_id in job_ids:
            if job_id in self._ids:
                continue
            self._ids.add(job_id)
            for event in self._buffered.pop(job_id, []):
                self._apply(event)

    def poll(self) -> int:
        """Read the lines appended since the last poll; return how many events were read."""
        if not os.path.exists(self.path):
            return 0
        with open(self.path, "rb") as fh:
            fh.seek(self._offset)
            chunk = fh.read()
        # A writer may be mid-append: consume only whole lines, the rest is read on the next poll.
        end = chunk.rfind(b"\n") + 1
        self._offset += end
        read = 0
        for raw in chunk[:end].splitlines():
            event = _parse(raw)
            if event is None:
                continue
            read += 1
            if self._track_all:
                self._ids.add(event.id)
            if event.id in self._ids:
                self._apply(event)
            else:
                # The API may write an event before the client has read the job id from the response.
                self._buffered.setdefault(event.id, []).append(event)
        return read

    def _apply(self, event: CompletionEvent) -> None:
        if event.ok:
            self._ok_counts[event.id] = self._ok_counts.get(event.id, 0) + 1
            self._failed.discard(event.id)
            self._first_ok.setdefault(event.id, event)
        elif event.id not in self._ok_counts:
            self._failed.add(event.id)

    def tally(self, expected: int | None = None, *, enqueued_from: float | None = None) -> LedgerTally:
        """The counts for the expected ids; ``expected`` may exceed the ids known (requests that failed).

        ``enqueued_from`` (epoch seconds) keeps only the latencies of jobs enqueued at or after it (a
        warm-up excluded); the counts still cover every expected id.
        """
        expected = len(self._ids) if expected is None else expected
        latency = stats.new_histogram()
        by_kind: dict[str, HdrHistogram] = {}
        first_enqueued: float | None = None
        first_finished: float | None = None
        last_finished: float | None = None
        for event in self._first_ok.values():
            first_finished = (
                event.finished_at if first_finished is None else min(first_finished, event.finished_at)
            )
            if enqueued_from is not None and event.enqueued_at < enqueued_from:
                continue
            e2e_ms = (event.finished_at - event.enqueued_at) * 1000.0
            stats.record_ms(latency, e2e_ms)
            stats.record_ms(by_kind.setdefault(event.kind, stats.new_histogram()), e2e_ms)
            first_enqueued = (
                event.enqueued_at if first_enqueued is None else min(first_enqueued, event.enqueued_at)
            )
            last_finished = (
                event.finished_at if last_finished is None else max(last_finished, event.finished_at)
            )
        completed = len(self._ok_counts)
        return LedgerTally(
            expected=expected,
            completed=completed,
            duplicated=sum(1 for n in self._ok_counts.values() if n > 1),
            failed=len(self._failed),
            missing=max(expected - completed, 0),
            first_enqueued_at=first_enqueued,
            first_finished_at=first_finished,
            last_finished_at=last_finished,
            latency=latency,
            latency_by_kind=by_kind,
        )

    def completed_count(self) -> int:
        return len(self._ok_counts)

    def finish_times(self) -> list[float]:
        """When each completed id first finished (epoch seconds, the task's own clock), in order."""
        return sorted(event.finished_at for event in self._first_ok.values())

    def wait(
        self,
        expected: int,
        *,
        drain_timeout_s: float,
        stall_timeout_s: float | None = None,
        on_progress: Callable[[int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> LedgerTally:
        """Poll until ``expected`` ids completed, the drain timeout passes, or nothing new arrives for
        ``stall_timeout_s``. Never assumes completion: the tally says what is still missing."""
        deadline = time.monotonic() + drain_timeout_s
        last_change = time.monotonic()
        while True:
            if self.poll():
                last_change = time.monotonic()
            done = self.completed_count()
            if on_progress is not None:
                on_progress(done)
            now = time.monotonic()
            if done >= expected or now >= deadline or (cancel is not None and cancel.is_set()):
                break
            if stall_timeout_s is not None and now - last_change >= stall_timeout_s:
                break
            time.sleep(POLL_S)
        return self.tally(expected)


def _parse(raw: bytes) -> CompletionEvent | None:
    try:
        return CompletionEvent(**json.loads(raw))
    except (ValueError, TypeError):
        return None  # a torn or foreign line is skipped, never counted
