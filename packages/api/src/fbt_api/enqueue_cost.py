"""The CPU the API's threads spend inside ``Backend.enqueue``: the library's own enqueue, timed where it runs.

The harness's API cost decomposition reads it (``GET /health/enqueue-cost``) before and after a window, so
the library's share of a request is measured in the API process itself, at the offered rate of that window,
not in a separate probe. Thread CPU time (``time.thread_time``) counts only the calling thread's own work:
waiting for the broker's reply costs nothing, and another request's work never lands in this one's figure.

Each thread adds to a cell of its own (no lock on the request path); a read sums the cells.
"""

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


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

    def timed(self, call: Callable[[], T]) -> T:
        """Run ``call`` and add the thread CPU it took (also when it raised)."""
        began = time.thread_time()
        try:
            return call()
        finally:
            cell = self._cell()
            cell.cpu_s += time.thread_time() - began
            cell.calls += 1

    def totals(self) -> tuple[int, float]:
        """(enqueue calls, thread CPU seconds inside them) since the process started."""
        with self._lock:
            cells = list(self._cells)
        return sum(c.calls for c in cells), sum(c.cpu_s for c in cells)


# One per API process: the routes add to it, GET /health/enqueue-cost reads it.
ENQUEUE_COST = EnqueueCost()
