"""The CPU a process's threads spend inside the library's own enqueue call: timed where it runs.

Each runner's ``Backend.enqueue`` wraps the one call that hands the job to its library (``apply_async``,
``enqueue_call``, the broker's ``enqueue``, the script or pipeline that writes the library's own message,
``BackgroundTasks.add_task``) in ``LIBRARY_ENQUEUE.timed()``; what the runner does around it (the envelope,
error translation) stays outside, on the project's side. The API serves the totals
(``GET /health/enqueue-cost``) and the harness's API cost decomposition reads them before and after a window,
so the library's share of a request is measured in the API process itself, at that window's offered rate.

Thread CPU time (``time.thread_time``) counts only the calling thread's own work: waiting for the broker's
reply costs nothing, and another request's work never lands in this one's figure. Each thread adds to a
cell of its own (no lock on the request path); a read sums the cells.
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class _Cell:
    __slots__ = ("calls", "cpu_s")

    def __init__(self) -> None:
        self.calls = 0
        self.cpu_s = 0.0


class EnqueueCost:
    def __init__(self) -> None:
        self._local = threading.local()
        self._cells: list[_Cell] = []
        self._lock = threading.Lock()  # only when a thread makes its cell

    def _cell(self) -> _Cell:
        cell: _Cell | None = getattr(self._local, "cell", None)
        if cell is None:
            cell = self._local.cell = _Cell()
            with self._lock:
                self._cells.append(cell)
        return cell

    @contextmanager
    def timed(self) -> Iterator[None]:
        """Add the thread CPU the block takes (also when it raises) and count one call."""
        began = time.thread_time()
        try:
            yield
        finally:
            cell = self._cell()
            cell.cpu_s += time.thread_time() - began
            cell.calls += 1

    def totals(self) -> tuple[int, float]:
        """(enqueue calls, thread CPU seconds inside them) since the process started."""
        with self._lock:
            cells = list(self._cells)
        return sum(c.calls for c in cells), sum(c.cpu_s for c in cells)


# One per process: the runners' enqueues add to it, the API's GET /health/enqueue-cost reads it.
LIBRARY_ENQUEUE = EnqueueCost()
