"""What a comparison run will do, decided before anything starts: the plan, the shuffled orders (from the
recorded seed), where processes are pinned, and the clock that records where the time went.
"""

import contextlib
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from fbt_bench import topology
from fbt_bench.profiles import SCENARIOS, Profile
from fbt_bench.scenarios import baselines
from fbt_bench.scenarios.registry import DEPENDS_ON
from fbt_tasks.runner import QueueConfigName
from fbt_tasks.settings import ANYIO_DEFAULT_THREADPOOL


@dataclass(frozen=True)
class Plan:
    profile: Profile
    runners: tuple[str, ...]
    # Empty: the profile's own (quick and default leave out cpu-sweep and burst, full runs them).
    scenarios: tuple[str, ...] = ()
    baselines: tuple[str, ...] = baselines.BASELINES
    config: QueueConfigName = "safe"
    seed: int = 0  # the CLI draws a fresh one per run unless --seed is given; recorded either way
    out_root: Path = Path("results")
    command: str | None = None
    # The short fault pass (fbt_bench.faults.SHORT: kill-worker, both queue configs) after the scenarios.
    fault_pass: bool = True
    # The brokers to measure each runner on (None: every broker it supports that this machine can provide).
    brokers: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.scenarios:
            object.__setattr__(self, "scenarios", self.profile.scenarios or SCENARIOS)


@dataclass
class Clock:
    """Where the time went: one entry per runner (or floor) x repeat x scenario, stack starts included."""

    phases: list[dict[str, Any]] = field(default_factory=list)
    began: float = field(default_factory=time.monotonic)

    def add(self, runner: str, repeat: int | None, scenario: str, since: float) -> None:
        seconds = round(time.monotonic() - since, 2)
        self.phases.append({"runner": runner, "repeat": repeat, "scenario": scenario, "seconds": seconds})

    def record(self) -> dict[str, Any]:
        return {"total": round(time.monotonic() - self.began, 1), "phases": self.phases}


def runner_orders(runners: tuple[str, ...], repeats: int, seed: int) -> list[list[str]]:
    """A shuffled order per repeat (runners on each broker, by system key, and floors interleaved), so drift
    on a shared machine does not always hit the same one."""
    rng = random.Random(seed)
    orders = []
    for _ in range(repeats):
        order = list(runners)
        rng.shuffle(order)
        orders.append(order)
    return orders


def scenario_orders(scenarios: tuple[str, ...], repeats: int, seed: int) -> list[list[str]]:
    """A shuffled scenario order per repeat; a scenario that needs others' figures moves after them."""
    rng = random.Random(seed + 1)
    orders = []
    for _ in range(repeats):
        order = list(scenarios)
        rng.shuffle(order)
        for name, needs in DEPENDS_ON.items():
            if name in order:
                order.remove(name)
                after = max((order.index(n) for n in needs if n in order), default=-1)
                order.insert(after + 1, name)
        orders.append(order)
    return orders


def placement(pin: bool = True) -> dict[str, Any]:
    """Pin the load generator to one core and the system under test to the rest, given 3 cores or more."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin:
        return {"pinned": False, "reason": "not requested", "cpus": cpus}
    if len(cpus) < 3:
        return {
            "pinned": False,
            "reason": f"only {len(cpus)} cores: pinning would starve the system under test or the load "
            "generator, so every process shares every core",
            "cpus": cpus,
        }
    return {
        "pinned": True,
        "reason": f"load generator on core {cpus[-1]}, the system under test on the other {len(cpus) - 1}",
        "loadgen_cpus": [cpus[-1]],
        "stack_cpus": cpus[:-1],
    }


def pin_stack(pids: list[int], where: dict[str, Any]) -> None:
    """Keep the system under test off the load generator's core (every process in each pid's tree)."""
    if not where.get("pinned"):
        return
    for root in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(root)
            for member in [proc, *proc.children(recursive=True)]:
                with contextlib.suppress(psutil.Error, OSError):
                    os.sched_setaffinity(member.pid, set(where["stack_cpus"]))


def parameters_for(
    plan: Plan, systems: list[topology.System], orders: list[list[str]], scenarios: list[list[str]]
) -> dict[str, Any]:
    return {
        **plan.profile.parameters(),
        "slots_why": "every runner and floor gets the same number of task slots (tasks that can run at once): "
        "each library spends them its own way (runners.<name>.slot_layout), so the budget is equal in "
        "concurrent tasks, not in processes or threads",
        "runner_order": orders,
        "scenario_order": scenarios,
        # The measured configurations' keys in ``runners`` (a runner on a second broker: <runner>/<broker>).
        "runners": [system.key for system in systems],
        "brokers": list(plan.brokers) if plan.brokers is not None else "all available",
        "scenarios": list(plan.scenarios),
        "baselines": list(plan.baselines),
        "config": plan.config,
        "seed": plan.seed,
        # Every runner's API gets this threadpool; for BackgroundTasks it is also the task slots.
        "api_threadpool": plan.profile.slots,
        "anyio_default_threadpool": ANYIO_DEFAULT_THREADPOOL,
        "uvicorn": {"workers": 1, "access_log": False},
    }
