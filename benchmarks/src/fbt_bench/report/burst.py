"""The burst section: where a backlog larger than the slots lives, what it costs the API, how long it lasts."""

from statistics import median
from typing import Any

from fbt_bench.measuring.stats import Spread
from fbt_bench.report.analysis import RepeatSet, Summary
from fbt_bench.report.numbers import fmt, table_id
from fbt_bench.report.tables import Table
from fbt_bench.report.wording import n_text

SCENARIO = "burst"
BLURB = (
    "More email than the slots can send: offered open loop at a multiple of the ideal throughput for a few "
    "seconds, then nothing but the GET /health probe until the backlog is gone. At the end of the burst the "
    "broker is asked what it holds; what was accepted, not yet sent and not in the broker is in the API's "
    "memory, where a crash or a deploy loses it."
)


def refused(group: RepeatSet) -> float | None:
    """The median over repeats of the requests the API refused during the burst (errors, timeouts)."""
    found = [r["extra"].get("refused") for r in group.records if r["extra"].get("refused") is not None]
    return float(median(found)) if found else None


def recovery(group: RepeatSet) -> Spread | None:
    return Spread.of(r["extra"].get("recovery_s") for r in group.records)


def peak(group: RepeatSet, where: str) -> float | None:
    """The median over repeats of the backlog ``where`` ("in_api", "in_broker", "backlog") at the peak."""
    found = [r["extra"]["at_peak"][where] for r in group.records if r["extra"].get("at_peak")]
    return float(median(found)) if found else None


def health_p99(group: RepeatSet) -> tuple[float | None, int]:
    """The median over repeats of /health's p99 during burst and recovery, and the fewest probes behind one."""
    shapes: list[dict[str, Any]] = [
        r["extra"]["health_ms"] for r in group.records if r["extra"].get("health_ms")
    ]
    if not shapes:
        return None, 0
    return float(median(s["p99"] for s in shapes)), min(int(s["n"]) for s in shapes)


def crash_text(group: RepeatSet) -> str:
    """What the run's fault pass lost and held when it SIGKILLed, then SIGTERMed, this system mid-burst."""
    parts = []
    for key, signal in (("kill", "SIGKILL"), ("deploy", "SIGTERM")):
        found = next((r["extra"][key] for r in group.records if r["extra"].get(key)), None)
        if found is None:
            parts.append(f"{signal}: not measured")
            continue
        lost, held = int(found["lost"]), int(found["held"])
        fate = ", ".join(p for p in (f"{lost} lost" if lost else "", f"{held} held" if held else "") if p)
        parts.append(f"{signal}: {fate or 'none lost'} of {int(found['expected'])}")
    return "; ".join(parts)


def burst_table(summary: Summary) -> Table | None:
    groups = [g for runner, config in summary.systems if (g := summary.get(SCENARIO, runner, config))]
    if not groups:
        return None
    rows = []
    for g in groups:
        p99, n = health_p99(g)
        pss = Spread.of(r["extra"].get("peak_api_pss_mb") for r in g.records)
        took = recovery(g)
        offered = g.records[0]["extra"]
        rows.append(
            (
                g.label,
                f"{fmt(offered.get('offered_rate'), '/s')} for {fmt(offered.get('burst_s'), ' s')}",
                fmt(refused(g)),
                fmt(peak(g, "backlog")),
                fmt(peak(g, "in_broker")),
                fmt(peak(g, "in_api")),
                fmt(took.median if took else None, " s"),
                f"{fmt(p99, ' ms')} ({n_text(n)})",
                fmt(pss.median if pss else None, " MB"),
                crash_text(g),
            )
        )
    return Table(
        id=table_id(SCENARIO),
        title="burst: where the backlog lives, what it costs the API, how long it lasts",
        columns=(
            "Runner",
            "offered",
            "refused",
            "backlog at the peak",
            "in the broker",
            "in the API's memory",
            "recovery",
            "/health p99 (n)",
            "API peak PSS",
            "killed / deployed mid-burst",
        ),
        rows=tuple(rows),
        notes=(
            "Medians over repeats; recovery runs from the end of the burst to the last burst email sent.",
            "Killed / deployed: the run's fault pass, which SIGKILLs the workers (the API, where tasks run in "
            "it) or SIGTERMs them with the deploy grace period while a burst of email is still being sent; "
            "lost never ran, held were still in the broker when its watch ended (When things break).",
        ),
    )
