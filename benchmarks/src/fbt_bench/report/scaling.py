"""The slot sweep's section (``PROFILE=scaling``; records with ``slots``, absent from other runs): throughput
against slots per runner beside its ideal, where each runner leaves 80 % of the ideal and what the records say
about why (CPU per task, busy cores), and peak PSS per slot.

The ideals: email-io's is slots / SMTP delay (each slot sends one message per delay; the record's own
``ideal_throughput_per_s``). drain's tasks are CPU: its ideal is the runner's rate at its fewest slots, per
core used there, times the cores min(slots, cores) can use (``parameters.scaling.cores``). Each point is the
median over its records and says how many there were.
"""

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fbt_bench.report import charts
from fbt_bench.report.analysis import PARTIAL_MARK
from fbt_bench.report.figures import Chart
from fbt_bench.report.numbers import figure_id, fmt
from fbt_bench.report.tables import Table
from fbt_tasks.registry import system_key

TABLE_ID = "tab-scaling"
SUMMARY_ID = "tab-scaling-summary"
CHART_ID = figure_id("scaling")
SCENARIOS = ("email-io", "drain")
# A point below this share of its ideal has left it (issue #13).
IDEAL_SHARE = 0.8
# Busy cores at or above this share of the cores: the cores were the limit.
SATURATED_SHARE = 0.8


def sweep_records(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in results["records"] if r.get("slots") is not None]


def at_budget(results: dict[str, Any]) -> dict[str, Any]:
    """The document with only the records at the run's own slot budget: what the scenario sections show for a
    sweep (this section shows every slot count). Unchanged when no record carries ``slots``."""
    if not sweep_records(results):
        return results
    budget = results["parameters"].get("slots")
    return {**results, "records": [r for r in results["records"] if r.get("slots", budget) == budget]}


def cores(results: dict[str, Any]) -> int:
    """The cores the sweep split its slots over (the machine's count in a document that lacks it)."""
    recorded = (results["parameters"].get("scaling") or {}).get("cores")
    return int(recorded or results["environment"].get("cpu_count") or 1)


@dataclass
class Point:
    """One runner at one slot count, one scenario: medians over its records."""

    slots: int
    n: int
    throughput: float
    ideal: float | None
    layout: str
    cpu_us: float | None
    busy_cores: float | None
    memory: dict[str, Any] | None
    # Some record of the point did not complete every task: its rate covers the completed ones only.
    partial: bool = False

    @property
    def share(self) -> float | None:
        return self.throughput / self.ideal if self.ideal else None


@dataclass
class Sweep:
    """One runner's sweep: its points by scenario, ascending slots."""

    name: str
    points: dict[str, list[Point]] = field(default_factory=dict)

    def left_ideal(self, scenario: str) -> Point | None:
        """The first point below IDEAL_SHARE of its ideal (drain's first point is its own ideal)."""
        return next(
            (p for p in self.points.get(scenario, []) if p.share is not None and p.share < IDEAL_SHARE), None
        )

    def memory(self) -> list[tuple[int, dict[str, Any]]]:
        """(slots, slot_memory) per slot count: email-io's (every slot held a connection), else drain's."""
        found: dict[int, dict[str, Any]] = {}
        for scenario in reversed(SCENARIOS):
            for point in self.points.get(scenario, []):
                if point.memory is not None:
                    found[point.slots] = point.memory
        return sorted(found.items())

    def mb_per_added_slot(self) -> float | None:
        """The slope of peak PSS from the fewest to the most slots, within one process group."""
        memory = self.memory()
        if len(memory) < 2 or memory[0][1]["group"] != memory[-1][1]["group"]:
            return None
        (low, a), (high, b) = memory[0], memory[-1]
        return (float(b["peak_pss_mb"]) - float(a["peak_pss_mb"])) / (high - low)


def _name(results: dict[str, Any], record: dict[str, Any]) -> str:
    key = system_key(record["runner"], record.get("broker"))
    return str(results["runners"].get(key, {}).get("display_name", key))


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _busy_cores(record: dict[str, Any]) -> float | None:
    """CPU of every sampled process per second: a drain's from its first completions on (its workers' start
    left out), else over the throughput window plus a drain's worker start (start_to_first_s)."""
    draining = record["extra"].get("draining")
    if draining and draining["seconds"] > 0:
        return float(draining["cpu_s"]) / float(draining["seconds"])
    window = float(record["duration_s"]) + float(record["extra"].get("start_to_first_s") or 0.0)
    cpu = sum(float(usage.get("cpu_s", 0.0)) for usage in record["resources"].values())
    return cpu / window if window > 0 else None


def _cpu_us(record: dict[str, Any]) -> float | None:
    """CPU µs per task of the API, broker and workers: a drain's while draining where recorded."""
    draining = record["extra"].get("draining")
    cost = draining["cpu_us_per_task"] if draining else record["cpu_us_per_task"]
    total = cost.get("total")
    return float(total) if total is not None else None


def _point(records: list[dict[str, Any]], ideal: float | None) -> Point:
    first = records[0]
    layout = first["slot_layout"]
    memories = [r["slot_memory"] for r in records if r.get("slot_memory")]
    return Point(
        slots=int(first["slots"]),
        n=len(records),
        throughput=statistics.median(r["throughput_per_s"] for r in records),
        ideal=ideal,
        layout=f"{layout['processes']} × {layout['threads']}: {layout['described']}",
        cpu_us=_median([c for r in records if (c := _cpu_us(r)) is not None]),
        busy_cores=_median([b for r in records if (b := _busy_cores(r)) is not None]),
        memory=max(memories, key=lambda m: m["peak_pss_mb"]) if memories else None,
        partial=any(r["completed"] != r["expected"] for r in records),
    )


def sweeps(results: dict[str, Any]) -> list[Sweep]:
    """Every runner's sweep, in the order the runners first appear in the records."""
    grouped: dict[str, dict[str, dict[int, list[dict[str, Any]]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for record in sweep_records(results):
        if record["scenario"] in SCENARIOS:
            grouped[_name(results, record)][record["scenario"]][int(record["slots"])].append(record)
    n_cores = cores(results)
    found = []
    for name, by_scenario in grouped.items():
        sweep = Sweep(name)
        for scenario, by_slots in by_scenario.items():
            points: list[Point] = []
            for slots, records in sorted(by_slots.items()):
                ideal = (
                    _median([i for r in records if (i := r["extra"].get("ideal_throughput_per_s"))])
                    if scenario == "email-io"
                    else _drain_ideal(points, slots, n_cores)
                )
                points.append(_point(records, ideal))
            if scenario == "drain" and points:
                points[0].ideal = points[0].throughput
            sweep.points[scenario] = points
        found.append(sweep)
    return found


def _drain_ideal(before: list[Point], slots: int, n_cores: int) -> float | None:
    """The fewest slots' rate per usable core, times the cores ``slots`` can use."""
    if not before:
        return None
    base = before[0]
    return base.throughput / min(base.slots, n_cores) * min(slots, n_cores)


def slots_text(slots: int) -> str:
    return f"{slots} slot" if slots == 1 else f"{slots} slots"


def _cell(point: Point | None) -> str:
    if point is None:
        return "—"
    share = f", {point.share:.0%} of ideal {fmt(point.ideal)}" if point.share is not None else ""
    return f"{fmt(point.throughput)}{share}" + (f" {PARTIAL_MARK}" if point.partial else "")


def _pair(a: float | None, b: float | None, decimals: int | None = None) -> str:
    def one(x: float | None) -> str:
        return "—" if x is None else (fmt(x) if decimals is None else f"{x:.{decimals}f}")

    return f"{one(a)} / {one(b)}"


def slots_table(results: dict[str, Any]) -> Table | None:
    found = sweeps(results)
    if not found:
        return None
    rows = []
    for sweep in found:
        email = {p.slots: p for p in sweep.points.get("email-io", [])}
        drain = {p.slots: p for p in sweep.points.get("drain", [])}
        memory = dict(sweep.memory())
        for slots in sorted({*email, *drain}):
            e, d = email.get(slots), drain.get(slots)
            either = e or d
            assert either is not None
            held = memory.get(slots)
            rows.append(
                (
                    sweep.name,
                    f"{slots} ({either.layout})",
                    _cell(e),
                    _cell(d),
                    _pair(e.cpu_us if e else None, d.cpu_us if d else None),
                    _pair(e.busy_cores if e else None, d.busy_cores if d else None, 1),
                    f"{fmt(held['peak_pss_mb'])} ({held['group']}) / {fmt(held['per_slot_mb'])}"
                    if held
                    else "—",
                    _pair(e.n if e else None, d.n if d else None),
                )
            )
    return Table(
        TABLE_ID,
        "Throughput, CPU and memory against task slots",
        (
            "Runner",
            "Slots (processes × threads: what ran)",
            "email-io tasks/s (% of ideal)",
            "drain tasks/s (% of ideal)",
            "CPU µs/task email-io / drain",
            f"Cores busy email-io / drain (of {cores(results)})",
            "Peak PSS MB (group) / per slot",
            "Records email-io / drain",
        ),
        tuple(rows),
        (
            "email-io's ideal is slots / SMTP delay; drain's is the rate at the fewest slots per core used there, "
            "times the cores the slots can use: above 100 % of it, the fewest slots were held back by something "
            "other than CPU. Medians over the records each point has (last column); "
            f"{PARTIAL_MARK}: some task did not complete in time, the rate covers the completed ones.",
            "CPU per task counts the API, broker and workers over the scenario's sampled window; a drain's from "
            "its first completions on (extra.draining), leaving its workers' start out where recorded. Cores "
            "busy is every sampled process's CPU (load generator and SMTP sink included) per second of that "
            "window.",
            "Peak PSS is the largest sum of proportional set sizes seen at one sample of the group that held "
            "the slots (the workers, or the API where tasks run in it), from email-io where measured (every slot "
            "holds an SMTP conversation there), else drain.",
        ),
    )


def _left_text(sweep: Sweep, scenario: str) -> str:
    points = sweep.points.get(scenario, [])
    if len(points) < 2:
        return "—"
    left = sweep.left_ideal(scenario)
    if left is None:
        return f"stays above {IDEAL_SHARE:.0%} up to {points[-1].slots}"
    return f"{slots_text(left.slots)} ({left.share:.0%})"


def summary_table(results: dict[str, Any]) -> Table | None:
    found = sweeps(results)
    if not found:
        return None
    rows = []
    for sweep in found:
        slope = sweep.mb_per_added_slot()
        memory = sweep.memory()
        group = memory[-1][1]["group"] if memory else ""
        widest = max((p for ps in sweep.points.values() for p in ps), key=lambda p: p.slots)
        rows.append(
            (
                sweep.name,
                _left_text(sweep, "email-io"),
                _left_text(sweep, "drain"),
                f"{fmt(slope)} ({group})" if slope is not None else "—",
                widest.layout,
            )
        )
    return Table(
        SUMMARY_ID,
        f"Where each runner leaves {IDEAL_SHARE:.0%} of its ideal, and what a slot costs in memory",
        (
            "Runner",
            f"email-io below {IDEAL_SHARE:.0%} of ideal at",
            f"drain below {IDEAL_SHARE:.0%} of ideal at",
            "Peak PSS MB per added slot (group)",
            "At the most slots (processes × threads: what ran)",
        ),
        tuple(rows),
        (
            "Per added slot: the rise in peak PSS from the fewest to the most slots, divided by the slots added "
            "(the memory a runner's model spends on each concurrent task: a process, a thread or an asyncio task).",
        ),
    )


def _why(point: Point, base: Point, n_cores: int) -> str:
    parts = [PARTIAL_MARK] if point.partial else []
    if point.busy_cores is not None:
        limit = (
            "the cores were the limit" if point.busy_cores >= SATURATED_SHARE * n_cores else "not the cores"
        )
        parts.append(f"{point.busy_cores:.1f} of {n_cores} cores busy ({limit})")
    if point.cpu_us is not None and base.cpu_us is not None and point is not base:
        parts.append(
            f"CPU per task {fmt(point.cpu_us, ' µs')} against {fmt(base.cpu_us, ' µs')} at {slots_text(base.slots)}"
        )
    elif point.cpu_us is not None:
        parts.append(f"CPU per task {fmt(point.cpu_us, ' µs')}")
    if point.memory is not None:
        parts.append(f"peak PSS {fmt(point.memory['per_slot_mb'])} MB per slot ({point.memory['group']})")
    return "; ".join(parts)


def findings(results: dict[str, Any]) -> list[str]:
    """One sentence per runner and scenario (where it leaves the ideal, and the records' why), then memory."""
    n_cores = cores(results)
    found = sweeps(results)
    lines = []
    for sweep in found:
        for scenario in SCENARIOS:
            points = sweep.points.get(scenario, [])
            if len(points) < 2:
                continue
            left = sweep.left_ideal(scenario)
            if left is None:
                partial = [str(p.slots) for p in points if p.partial]
                lines.append(
                    f"{sweep.name}: {scenario} stays above {IDEAL_SHARE:.0%} of its ideal from {points[0].slots} "
                    f"to {points[-1].slots} slots ({points[-1].share:.0%} at {points[-1].slots}, n={points[-1].n})"
                    + (f"; {PARTIAL_MARK} at {', '.join(partial)} slots." if partial else ".")
                )
                continue
            why = _why(left, points[0], n_cores)
            where = "is below" if left is points[0] else "leaves"
            lines.append(
                f"{sweep.name}: {scenario} {where} {IDEAL_SHARE:.0%} of its ideal at {slots_text(left.slots)} "
                f"({fmt(left.throughput)} tasks/s, {left.share:.0%} of {fmt(left.ideal)}, n={left.n})"
                + (f": {why}." if why else ".")
            )
    slopes = sorted(
        ((s.mb_per_added_slot(), s) for s in found if s.mb_per_added_slot() is not None),
        key=lambda x: x[0] or 0,
    )
    if len(slopes) > 1:
        lines.append(
            "Peak PSS per added slot, least first: "
            + ", ".join(f"{s.name} {fmt(mb)} MB ({s.memory()[-1][1]['group']})" for mb, s in slopes)
            + "."
        )
    return lines


def slots_chart(results: dict[str, Any]) -> Chart | None:
    found = sweeps(results)
    if not found:
        return None
    names = [s.name for s in found]
    panels = []
    for scenario in SCENARIOS:
        series = {s.name: [(p.slots, p.throughput) for p in s.points.get(scenario, [])] for s in found}
        references: dict[str, list[tuple[float, float]]] = {}
        for sweep in found:
            ideal = [(float(p.slots), p.ideal) for p in sweep.points.get(scenario, []) if p.ideal is not None]
            # email-io's ideal is the same for every runner (slots / delay): one black line.
            key = "ideal" if scenario == "email-io" else sweep.name
            references.setdefault(key, ideal)
        panels.append(
            charts.Panel(scenario, "tasks/s (log)", {k: v for k, v in series.items() if v}, references)
        )
    memory = {s.name: [(slots, m["per_slot_mb"]) for slots, m in s.memory()] for s in found}
    panels.append(
        charts.Panel("memory", "peak PSS MB per slot (log)", {k: v for k, v in memory.items() if v}, {})
    )
    title = "Throughput and memory against task slots"
    caption = (
        "Left and middle: throughput per runner (solid) and its ideal (dashed: email-io's slots / SMTP delay in "
        "black, drain's in the runner's colour). Right: peak PSS of the group that held the slots, per slot. "
        "Medians over each point's records; the table gives their n."
    )
    svg = charts.sweep_lines(CHART_ID, panels, "task slots", title, charts.Palette.of(names, []))
    return Chart(CHART_ID, title, caption, svg, None)


INTRO = (
    "Every runner measured once per slot count (on its default broker unless --brokers said otherwise), the "
    "slots split into processes × threads by one rule over the cores the system under test had "
    "(parameters.scaling.rule), each runner spending them in its own model. email-io waits on SMTP (its ideal "
    "grows with the slots); drain's tasks are CPU, so its ideal stops growing at the cores. The scenario "
    "sections above show the run's own slot budget only."
)


OPTIONAL_PROFILE = (
    "`make compare PROFILE=scaling` measures every runner's drain and email-io at 1, 2, 4, 8, 16 and 32 "
    "slots on its default broker, with throughput against the ideal and peak PSS per slot (README, 'Scaling "
    "with workers')."
)
