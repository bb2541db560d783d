"""Live progress for a long run: rich bars on a terminal, nothing at all in tests."""

import threading
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


class ProgressSink(Protocol):
    def phase(self, text: str) -> None:
        """Announce what the run is doing now (starting a stack, warming up, a scenario)."""

    def bar(self, label: str, total: int) -> int:
        """Open a bar of ``total`` steps; return its handle."""

    def update(self, handle: int, completed: int) -> None:
        """Move a bar to ``completed`` steps (callable from any thread)."""

    def close(self, handle: int) -> None:
        """Remove a finished bar."""


class NullProgress:
    def phase(self, text: str) -> None:
        pass

    def bar(self, label: str, total: int) -> int:  # noqa: ARG002 (ProgressSink's signature)
        return 0

    def update(self, handle: int, completed: int) -> None:
        pass

    def close(self, handle: int) -> None:
        pass


class RichProgress:
    """A timestamped line per phase, plus a live bar per measurement in progress."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._lock = threading.Lock()

    def __enter__(self) -> "RichProgress":
        self._progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._progress.stop()

    def phase(self, text: str) -> None:
        # Logged above the bars, so the finished phases stay readable as a timeline of the run.
        self._progress.console.log(text)

    def bar(self, label: str, total: int) -> int:
        with self._lock:
            return int(self._progress.add_task(f"  {label}", total=max(total, 1)))

    def update(self, handle: int, completed: int) -> None:
        self._progress.update(TaskID(handle), completed=completed)

    def close(self, handle: int) -> None:
        with self._lock:
            self._progress.remove_task(TaskID(handle))
