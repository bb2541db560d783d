"""The peers' published drain figures beside this run's drains: where this machine's ordering agrees.

Each runner's plugin carries the figures published for its library (``Runner.published_drains``, recorded in
results.json); this joins them by source. Never compared as ratios: their N, workers, task and hardware differ
from this run's, so only the order of the libraries is comparable.
"""

from typing import Any

from fbt_bench.measuring.stats import NOISY_CV
from fbt_bench.report.analysis import Summary
from fbt_bench.report.capacity import drained_per_s
from fbt_bench.report.numbers import fmt, table_id
from fbt_bench.report.tables import Table


def published(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every source's benchmark, joined from the runners' own published_drains (runner plugin facts)."""
    by_source: dict[str, dict[str, Any]] = {}
    for name, info in results["runners"].items():
        for drain in info.get("published_drains") or []:
            bench = by_source.setdefault(
                drain["source"],
                {
                    "source": drain["source"],
                    "n": drain["n"],
                    "workers": drain["workers"],
                    "task": drain["task"],
                },
            )
            bench.setdefault("seconds", {})[name] = drain["seconds"]
            if drain.get("variant"):
                bench.setdefault("variants", {})[name] = drain["variant"]
    return list(by_source.values())


def _order(rates: dict[str, float]) -> list[str]:
    return [name for name, _ in sorted(rates.items(), key=lambda item: -item[1])]


def _agreement(theirs: list[str], ours: list[str], rates: dict[str, float]) -> str:
    """ "yes", or "no" with the pairs this run puts the other way round, saying which of them are within noise."""
    if theirs == ours:
        return "yes"
    swapped = [(a, b) for i, a in enumerate(theirs) for b in theirs[i + 1 :] if ours.index(a) > ours.index(b)]
    close = [(a, b) for a, b in swapped if abs(rates[a] - rates[b]) <= NOISY_CV * max(rates[a], rates[b])]
    if len(close) == len(swapped):
        return f"no, but only within {NOISY_CV:.0%}, i.e. within noise here"
    return "no"


def peers_table(summary: Summary) -> Table | None:
    """One row per published benchmark: its conditions, its jobs/s per library, this run's order of the same
    libraries (their drain on their default broker) and whether the two orders agree."""
    ours: dict[str, float] = {}
    # A runner on its default broker is keyed by its plain name, the name the peers' figures use.
    for group in summary.in_scenario("drain", baselines=False):
        rate = group.spread(drained_per_s)
        if rate is not None:
            ours.setdefault(group.runner, rate.median)
    rows = []
    for bench in published(summary.results):
        theirs = {name: bench["n"] / seconds for name, seconds in bench["seconds"].items()}
        shared = {name: ours[name] for name in theirs if name in ours}
        if len(shared) < 2:
            continue
        their_order = _order({name: theirs[name] for name in shared})
        our_order = _order(shared)
        variants = bench.get("variants", {})
        rows.append(
            (
                bench["source"],
                f"N={bench['n']:,}, {bench['workers']}, {bench['task']}",
                "; ".join(
                    f"{variants.get(n, summary.display_name(n))} {fmt(rate)} jobs/s"
                    for n, rate in theirs.items()
                ),
                " > ".join(summary.display_name(n) for n in their_order),
                " > ".join(summary.display_name(n) for n in our_order),
                _agreement(their_order, our_order, shared),
            )
        )
    if not rows:
        return None
    return Table(
        table_id("peers"),
        "drain: the peers' published figures beside this run's order",
        (
            "Published by",
            "Their conditions",
            "Their figures",
            "Their order",
            "Order here (drain)",
            "Same order",
        ),
        tuple(rows),
        (
            "Figures as issue #12 quotes them from each source (each runner plugin's published_drains); their N, "
            "workers, task and hardware "
            "differ from this run's, so only the order of the libraries is compared, never a ratio.",
        ),
    )
