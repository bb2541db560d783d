"""The cpu-sweep section: per runner and placement, the resize rate at which /health p99 broke the SLO."""

from fbt_bench.measuring.stats import Spread
from fbt_bench.report.analysis import RepeatSet, Summary
from fbt_bench.report.numbers import fmt, table_id
from fbt_bench.report.tables import Table

SCENARIO = "cpu-sweep"
PLACEMENTS = ("shared", "split")
BLURB = (
    "How much CPU work each runner takes before the API stops answering on time: resizes offered at a rising "
    "rate (doubling, then bisection) while GET /health is probed at least 1,000 times per point; the "
    "threshold is the highest rate whose window kept /health p99 within the SLO with no failed probe. "
    "shared: every process on both cores; split: the API alone on one core, the workers and the broker on "
    "the other, so tasks inside the API are told apart from processes that share its CPU."
)


def thresholds(group: RepeatSet, placement: str) -> Spread | None:
    """The threshold over the repeats at ``placement``; None where no repeat found one."""
    found = [
        r["extra"].get("threshold_per_s") for r in group.records if r["extra"].get("placement") == placement
    ]
    return Spread.of(found)


def at_least(group: RepeatSet, placement: str) -> Spread | None:
    """Where no point of a repeat broke the SLO: the highest rate it passed, a lower bound on the threshold."""
    found = [
        max((p["rate_hz"] for p in r["extra"].get("points", []) if p["passed"]), default=None)
        for r in group.records
        if r["extra"].get("placement") == placement and r["extra"].get("threshold_per_s") is None
    ]
    return Spread.of(found)


def probes(group: RepeatSet) -> int:
    """The fewest probes any record's thresholds rest on (its points' windows together)."""
    return min((int(r["extra"].get("n") or 0) for r in group.records), default=0)


def reasons(group: RepeatSet, placement: str) -> list[str]:
    """Why a repeat found no threshold at ``placement``, each once."""
    found = [
        str(r["extra"].get("why"))
        for r in group.records
        if r["extra"].get("placement") == placement and r["extra"].get("threshold_per_s") is None
    ]
    return list(dict.fromkeys(found))


def threshold_text(group: RepeatSet, placement: str) -> str:
    spread = thresholds(group, placement)
    if spread is None:
        bound = at_least(group, placement)
        if bound is not None:
            return f"≥ {fmt(bound.median, ' resizes/s')}: no break up to the sweep's ceiling"
        why = reasons(group, placement)
        return f"none found ({why[0]})" if why else "not measured"
    text = fmt(spread.median, " resizes/s")
    if spread.n > 1 and spread.low != spread.high:
        text += f" ({fmt(spread.low)}–{fmt(spread.high)})"
    missing = reasons(group, placement)
    return text + (f"; {len(missing)} repeat(s): {missing[0]}" if missing else "")


def sweep_table(summary: Summary) -> Table | None:
    groups = [g for runner, config in summary.systems if (g := summary.get(SCENARIO, runner, config))]
    if not groups:
        return None
    rows = tuple(
        (
            summary.system_label(g.runner, g.config),
            *(threshold_text(g, placement) for placement in PLACEMENTS),
            f"{probes(g):,}",
        )
        for g in groups
    )
    return Table(
        id=table_id(SCENARIO),
        title="cpu-sweep: resizes per second before GET /health p99 breaks the SLO",
        columns=("Runner", "shared (both cores)", "split (API on its own core)", "probes per repeat (n)"),
        rows=rows,
        notes=(
            f"Median over repeats, with the min–max range; SLO {fmt(summary.params.get('slo_ms'), ' ms')}.",
        ),
    )
