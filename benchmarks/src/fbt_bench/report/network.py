"""The hosts topology's section: throughput and end-to-end latency against the RTT to the broker, per
runner, with the Redis commands each task cost (records with ``rtt_ms``; absent from other runs).

Each cell is the median over repeats and carries its n; steady offers every RTT of a runner the same load
(the harness measures the longest RTT first and keeps its drain capacity), shown beside the latencies.
"""

import statistics
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from fbt_bench.report import charts
from fbt_bench.report.figures import Chart
from fbt_bench.report.numbers import figure_id
from fbt_bench.report.tables import Table
from fbt_tasks.registry import system_key

TABLE_ID = "tab-network-rtt"
CHART_ID = figure_id("network-rtt")


def rtt_records(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in results["records"] if r.get("rtt_ms") is not None]


def lowest_rtt_only(results: dict[str, Any]) -> dict[str, Any]:
    """The document with only the lowest RTT's records: what the scenario sections show for a hosts run."""
    rtts = {r["rtt_ms"] for r in rtt_records(results)}
    if not rtts:
        return results
    low = min(rtts)
    return {**results, "records": [r for r in results["records"] if r.get("rtt_ms", low) == low]}


def _name(results: dict[str, Any], record: dict[str, Any]) -> str:
    key = system_key(record["runner"], record.get("broker"))
    return str(results["runners"].get(key, {}).get("display_name", key))


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _cells(results: dict[str, Any]) -> dict[tuple[str, float], dict[str, Any]]:
    """(runner, rtt) -> the medians over repeats of what the table and chart show, with their counts."""
    grouped: dict[tuple[str, float], dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for record in rtt_records(results):
        grouped[(_name(results, record), float(record["rtt_ms"]))][record["scenario"]].append(record)
    cells = {}
    for key, by_scenario in grouped.items():
        drains, steadies = by_scenario.get("drain", []), by_scenario.get("steady", [])
        every = [*drains, *steadies]
        cells[key] = {
            "measured": _median([r["network"]["rtt_measured_ms"] for r in every]),
            "method": "/".join(sorted({r["network"]["delay_method"] for r in every})),
            "drain": _median([r["throughput_per_s"] for r in drains]),
            "drain_n": len(drains),
            "commands": _median(
                [c for r in drains if (c := r["network"]["redis_commands_per_task"]) is not None]
            ),
            "offered": _median([r["extra"]["offered_rate"] for r in steadies]),
            "p50": _median([r["latency_ms"]["p50"] for r in steadies if r["latency_ms"]["n"]]),
            "p99": _median([r["latency_ms"]["p99"] for r in steadies if r["latency_ms"]["n"]]),
            "latency_n": sum(r["latency_ms"]["n"] for r in steadies),
            "steady_n": len(steadies),
        }
    return cells


def _fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def rtt_table(results: dict[str, Any]) -> Table | None:
    cells = _cells(results)
    if not cells:
        return None
    lowest = {name: min(rtt for n, rtt in cells if n == name) for name, _ in cells}
    rows = []
    for (name, rtt), cell in sorted(cells.items()):
        base = cells[(name, lowest[name])]["drain"]
        ratio = f"×{cell['drain'] / base:.2f}" if cell["drain"] and base else "—"
        rows.append(
            (
                name,
                f"{rtt:g}",
                f"{_fmt(cell['measured'], 2)} ({cell['method']})",
                f"{_fmt(cell['drain'])} (n={cell['drain_n']})",
                ratio,
                _fmt(cell["commands"]),
                _fmt(cell["offered"]),
                f"{_fmt(cell['p50'])} / {_fmt(cell['p99'])} (n={cell['latency_n']:,})",
            )
        )
    return Table(
        TABLE_ID,
        "Broker round-trip time: drain throughput, steady end-to-end latency and Redis commands per task",
        (
            "Runner",
            "RTT asked ms",
            "RTT measured ms (how)",
            "drain tasks/s (repeats)",
            "vs lowest RTT",
            "Redis commands / task (drain)",
            "steady offered /s",
            "steady e2e p50 / p99 ms (n)",
        ),
        tuple(rows),
        (
            "Medians over repeats; a drain's n counts repeats, a latency's n the tasks behind it. RTT measured: "
            "median TCP round trip (a Redis PING) from the workers' host to the broker endpoint.",
            "Commands per task count every Redis command over the drain (pre-fill, workers, heartbeats): an "
            "upper bound on round trips, since a pipeline or MULTI/EXEC carries several in one.",
            "Steady offers each RTT of a runner the same load: half of the drain rate at its longest RTT.",
        ),
    )


def rtt_chart(results: dict[str, Any]) -> Chart | None:
    cells = _cells(results)
    if not cells:
        return None
    names = list(dict.fromkeys(name for name, _ in sorted(cells)))
    throughput: dict[str, list[tuple[float, float]]] = defaultdict(list)
    latency: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for (name, rtt), cell in sorted(cells.items()):
        if cell["drain"] is not None:
            throughput[name].append((rtt, cell["drain"]))
        for percentile in ("p50", "p99"):
            if cell[percentile] is not None:
                latency[name][percentile].append((rtt, cell[percentile]))
    title = "Throughput and end-to-end latency against the RTT to the broker"
    caption = (
        "Left: drain throughput per runner at each RTT. Right: steady end-to-end p50 (solid) and p99 "
        "(dashed) at the same offered load for every RTT of a runner. Medians over repeats; the table "
        "gives each point's n."
    )
    svg = charts.rtt_lines(CHART_ID, throughput, latency, title, charts.Palette.of(names, []))
    return Chart(CHART_ID, title, caption, svg, None)


ROLES_TEXT = (
    "The API, Redis and the workers each ran in a Linux network namespace of its own, joined by veth pairs "
    "through a bridge; the load generator and the SMTP sink stayed in the root namespace on the bridge's "
    "address. Only the broker's link carries the delay (half the RTT each way), so every host's round trip to "
    "Redis gains the RTT asked for and nothing else does. The scenario sections above show the lowest RTT."
)

OPTIONAL_PROFILE = (
    "`make compare PROFILE=network` (root and iproute2) measures every runner's drain and steady with the "
    "broker on another network namespace at 0, 1 and 5 ms RTT (README, 'The broker on another host')."
)
