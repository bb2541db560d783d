"""How long a run has left, for the progress line after every unit (a runner's scenarios in one repeat).

A unit that ran before (an earlier repeat) is expected to take as long again; one that has not, the mean of
every unit so far. So the estimate is rough in the first repeat and close from the second on.
"""

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Eta:
    # Every unit the run will measure, in order, by key (the runner's key; repeated across repeats).
    planned: Sequence[str]
    started: float = field(default_factory=time.monotonic)
    _taken: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    _done: int = 0

    def finished(self, key: str, seconds: float) -> None:
        self._taken[key].append(seconds)
        self._done += 1

    def left_s(self) -> float | None:
        """Seconds the remaining units should take; None before the first unit is done."""
        every = [s for taken in self._taken.values() for s in taken]
        if not every:
            return None
        mean = sum(every) / len(every)
        remaining = self.planned[self._done :]
        return sum(
            sum(self._taken[key]) / len(self._taken[key]) if self._taken.get(key) else mean
            for key in remaining
        )

    def line(self) -> str:
        """'unit 7/36, 21 min so far, about 1 h 27 min left'."""
        elapsed = time.monotonic() - self.started
        text = f"unit {self._done}/{len(self.planned)}, {_duration(elapsed)} so far"
        left = self.left_s()
        return text if left is None else f"{text}, about {_duration(left)} left"


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return f"{seconds:.0f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"
