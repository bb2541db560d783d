"""The slot sweep (``PROFILE=scaling``): each runner measured once per slot count, and what a record of the
sweep adds (its slot count, the real layout, peak PSS per slot).

The rule that turns a slot count into processes x threads is the same for every runner: as many processes as
the system under test has cores, but never more than the slots, and a process count that divides the slots
(so every process gets the same threads); threads = slots / processes. Each runner then spends that budget in
its own model, as its plugin does for the default 8 slots (``Runner.slot_layout``): a runner that runs one
process per slot (Celery prefork, RQ) starts ``slots`` processes whatever the split, a threaded or asyncio one
starts ``processes`` processes of ``threads`` threads or concurrent jobs. The records carry both: the split the
rule chose and the plugin's own sentence for what really ran.
"""

import dataclasses
from typing import Any

from fbt_bench.plan import Plan
from fbt_bench.profiles import Profile

RULE = (
    "processes = the largest divisor of slots that is at most the cores the system under test runs on, "
    "threads = slots / processes; each runner spends processes x threads in its own model "
    "(records.slot_layout.described)"
)

# The process group whose memory is the slots' own: the workers where tasks run in worker processes; the API
# where they run in the API process (a runner whose tasks run there has no worker process in email-io).
SLOT_GROUPS = ("workers", "api")


def split(slots: int, cores: int) -> tuple[int, int]:
    """(processes, threads) for ``slots`` on ``cores`` by the stated rule."""
    if slots < 1 or cores < 1:
        raise ValueError(f"slots and cores must be at least 1 (got {slots} slots, {cores} cores)")
    processes = max(p for p in range(1, min(slots, cores) + 1) if slots % p == 0)
    return processes, slots // processes


def stack_cores(where: dict[str, Any]) -> int:
    """How many cores the system under test may use: its pinned cores, else every core of this process."""
    cpus = where.get("stack_cpus") if where.get("pinned") else where.get("cpus")
    return max(len(cpus), 1) if isinstance(cpus, list) else 1


def profile_at(profile: Profile, slots: int, cores: int) -> Profile:
    """The profile one point of the sweep runs: ``slots`` split by the rule, email-io sized per slot."""
    processes, threads = split(slots, cores)
    email_n = slots * profile.email_per_slot if profile.email_per_slot else profile.email_n
    return profile.with_overrides(worker_processes=processes, worker_threads=threads, email_n=email_n)


def plan_at(plan: Plan, slots: int | None, cores: int) -> Plan:
    """The plan of one point of the sweep (``None``: the plan as it is, outside a sweep)."""
    if slots is None:
        return plan
    return dataclasses.replace(plan, profile=profile_at(plan.profile, slots, cores))


def sweep(profile: Profile) -> tuple[int | None, ...]:
    """The slot counts a unit is measured at, ascending; ``(None,)`` outside a sweep."""
    return tuple(sorted(set(profile.slot_sweep))) or (None,)


def parameters(profile: Profile, cores: int) -> dict[str, Any]:
    """What results.json's parameters add for a sweep: the cores the rule split by, the rule, each split."""
    return {
        "cores": cores,
        "rule": RULE,
        "layouts": {str(s): list(split(s, cores)) for s in sorted(set(profile.slot_sweep))},
    }


def slot_memory(record: dict[str, Any], slots: int) -> dict[str, Any] | None:
    """Peak PSS of the group that held the slots, and per slot; None when neither group was measured."""
    resources = record.get("resources", {})
    for group in SLOT_GROUPS:
        usage = resources.get(group) or {}
        if usage.get("processes", 0) > 0:
            pss = float(usage["peak_pss_mb"])
            return {"group": group, "peak_pss_mb": pss, "per_slot_mb": round(pss / slots, 2)}
    return None


def annotate(records: list[dict[str, Any]], profile: Profile, described: str) -> None:
    """Add ``slots``, ``slot_layout`` and ``slot_memory`` to the records one point of the sweep made."""
    slots = profile.slots
    for record in records:
        record["slots"] = slots
        record["slot_layout"] = {
            "processes": profile.worker_processes,
            "threads": profile.worker_threads,
            "described": described,
        }
        memory = slot_memory(record, slots)
        if memory is not None:
            record["slot_memory"] = memory
