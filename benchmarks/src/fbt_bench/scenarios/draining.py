"""The draining window of a drain: from a moment the harness chose (the workers reported ready, or the first
completion it saw) to the last completion, so CPU per task leaves the workers' start-up out."""

from dataclasses import dataclass
from typing import Any

from fbt_bench.measuring.sampler import ProcUsage
from fbt_bench.scenarios.record import cpu_us_per_task


@dataclass(frozen=True, slots=True)
class Ready:
    """The moment the workers reported ready: completions by then, the clock, every group's usage."""

    completed: int
    at_s: float
    usage: dict[str, ProcUsage]


@dataclass(frozen=True, slots=True)
class Draining:
    """From the workers' readiness to the end: every group's usage and the tasks completed in between."""

    after_completed: int  # tasks already done when the workers reported ready
    seconds: float
    tasks: int
    usage: dict[str, ProcUsage]

    def as_record(self) -> dict[str, Any]:
        return {
            "after_completed": self.after_completed,
            "seconds": round(self.seconds, 3),
            "tasks": self.tasks,
            "cpu_s": round(sum(usage["cpu_s"] for usage in self.usage.values()), 3),
            "cpu_us_per_task": cpu_us_per_task(self.usage, self.tasks),
        }


def draining(ready: Ready, ended: float, end: dict[str, ProcUsage], completed: int) -> Draining | None:
    """The draining window after ``ready``; None when nothing completed after it (a drain faster than the
    readiness check: then only the whole window, start-up included, is known)."""
    if completed <= ready.completed:
        return None
    between = {
        group: ProcUsage(
            cpu_s=max(usage["cpu_s"] - ready.usage[group]["cpu_s"], 0.0),
            peak_pss_mb=usage["peak_pss_mb"],
            peak_rss_mb=usage["peak_rss_mb"],
            processes=usage["processes"],
        )
        for group, usage in end.items()
        if group in ready.usage
    }
    return Draining(ready.completed, max(ended - ready.at_s, 0.0), completed - ready.completed, between)
