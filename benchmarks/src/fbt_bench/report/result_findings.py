"""The findings of the fixed workloads (email-io, cpu-heavy, mixed) and of the ops footprint: throughput
against the slot budget, the API's latency under CPU load, light tasks behind heavy ones, memory."""

from collections.abc import Sequence
from typing import Any

from fbt_bench.report.analysis import (
    RepeatSet,
    Summary,
    email_efficiency,
    footprint,
    footprint_groups,
    kind_shape,
    memory_measure,
    throughput,
)
from fbt_bench.report.numbers import figure_id, fmt, fmt_pct, fmt_ratio, fmt_spread, possessive, table_id
from fbt_bench.report.phrasing import Entry, Finding, measured, ranking, versus
from fbt_bench.report.wording import rate_unit, tails


def _budget_note(summary: Summary, entries: Sequence[Entry]) -> str:
    slots = summary.params["slots"]
    tokens = summary.threadpool_tokens()
    in_api = [g.runner for g, _ in entries if summary.runs_in_api(g.runner)]
    if in_api and tokens != slots:
        pool = f"{tokens}-token" if tokens else "its"
        name = summary.display_name(in_api[0])
        return f" (the broker runners at {slots} slots; {name} on the API's {pool} threadpool)"
    return f" at the same {slots} slots"


def throughput_findings(summary: Summary) -> list[Finding]:
    out = []
    # mixed is open loop at a fixed rate, so its throughput is the offered rate; its finding is about latency.
    for scenario in ("email-io", "cpu-heavy"):
        entries = measured(summary.in_scenario(scenario, baselines=False), throughput)
        if len(entries) < 2:
            continue
        unit = " " + rate_unit(scenario, (r for g, _ in entries for r in g.records))
        ordered = sorted(entries, key=lambda e: e[1].median, reverse=True)
        out.append(
            Finding(
                "result",
                f"{scenario}: {versus(ordered[0], ordered[1], unit)}{_budget_note(summary, ordered[:2])}. "
                f"All: {ranking(entries, unit, higher_is_better=True)}.",
                scenario,
                (figure_id("throughput", scenario), table_id(scenario)),
            )
        )
    return out


def email_efficiency_findings(summary: Summary) -> list[Finding]:
    groups = summary.in_scenario("email-io", baselines=False)
    entries = measured(groups, email_efficiency)
    if not entries:
        return []
    slots, delay = summary.params["slots"], smtp_delay_ms(summary)
    ideal = slots / (delay / 1000) if delay else None
    parts = []
    for group, eff in entries:
        tput = group.spread(throughput)
        parts.append(f"{group.tag()} {fmt_spread(tput, ' completed/s')} = {fmt_pct(eff.median)} of ideal")
    out = [
        Finding(
            "result",
            f"email-io: with a {fmt(delay, ' ms')} SMTP sink the {slots}-slot ideal is {fmt(ideal, '/s')} "
            f"({slots} / {fmt(delay, ' ms')}). " + "; ".join(parts) + ".",
            "email-io",
            (figure_id("throughput", "email-io"), table_id("email-io")),
        )
    ]
    tokens = summary.threadpool_tokens()
    for group, eff in entries:
        if summary.runs_in_api(group.runner) and eff.median > 1 and tokens and delay:
            own_ideal = tokens / (delay / 1000)
            tput = group.spread(throughput)
            own = tput.median / own_ideal if tput else None
            out.append(
                Finding(
                    "result",
                    f"{summary.display_name(group.runner)} are not held to the {slots}-slot budget: "
                    "email-io reached "
                    f"{fmt_spread(tput, ' completed/s')}, {fmt_ratio(eff.median)} the {slots}-slot ideal, because "
                    f"Starlette runs sync tasks on anyio's {tokens}-token threadpool (ideal {tokens} / "
                    f"{fmt(delay, ' ms')} = {fmt(own_ideal, '/s')}; {fmt_pct(own)} of that). "
                    "The same pool serves the API's sync endpoints.",
                    "email-io",
                    (figure_id("throughput", "email-io"), table_id("email-io")),
                )
            )
    return out


def smtp_delay_ms(summary: Summary) -> float | None:
    """The SMTP sink's delay: the run's parameter, else what the email-io records carry."""
    delay = summary.params.get("smtp_delay_ms")
    if isinstance(delay, int | float):
        return float(delay)
    found = [r["extra"].get("delay_ms") for g in summary.in_scenario("email-io") for r in g.records]
    return next((float(v) for v in found if isinstance(v, int | float)), None)


def interference_findings(summary: Summary) -> list[Finding]:
    rows = []
    for group in summary.in_scenario("cpu-heavy", baselines=False):
        idle, loaded = tails(_probe(group, "probe_idle_ms"), _probe(group, "probe_loaded_ms"))
        if idle is not None and loaded is not None:
            rows.append((group, idle, loaded))
    if not rows:
        return []
    rows.sort(key=lambda row: row[2].spread.median, reverse=True)
    parts = []
    for group, idle, loaded in rows:
        ratio = loaded.spread.median / idle.spread.median if idle.spread.median else None
        parts.append(
            f"{possessive(group.tag())} /health {idle.text()} idle, {loaded.text()} under load "
            f"({fmt_ratio(ratio)})"
        )
    text = "cpu-heavy, the API's own latency while resizes run: " + "; ".join(parts) + "."
    if len(rows) > 1 and rows[0][2].label == rows[-1][2].label:
        (worst, _, worst_tail), (calmest, _, calm_tail) = rows[0], rows[-1]
        # "ahead" means the smaller latency: the calmest first.
        pair = versus((calmest, calm_tail.spread), (worst, worst_tail.spread), " ms", higher_is_better=False)
        text += f" Loaded /health {worst_tail.label}, calmest vs worst: {pair}."
    return [Finding("result", text, "cpu-heavy", (figure_id("probe", "cpu-heavy"), table_id("cpu-heavy")))]


def _probe(group: RepeatSet, key: str) -> list[dict[str, Any]]:
    return [r["extra"][key] for r in group.records if isinstance(r.get("extra", {}).get(key), dict)]


def mixed_findings(summary: Summary) -> list[Finding]:
    groups = summary.in_scenario("mixed", baselines=False)
    found = tails(*([kind_shape(r, "write_log") for r in g.records] for g in groups))
    entries = [(g, t) for g, t in zip(groups, found, strict=True) if t is not None]
    if len(entries) < 2:
        return []
    p = summary.params
    label, n = entries[0][1].label, min(t.n for _, t in entries)
    load = (
        f" ({fmt(p['mixed_rate'], '/s')} for {fmt(p['mixed_duration_s'], ' s')})"
        if "mixed_rate" in p and "mixed_duration_s" in p
        else ""
    )
    return [
        Finding(
            "result",
            f"mixed{load}: light write_log tasks' end-to-end {label} (n≥{n:,} per repeat) while emails and "
            "resizes share the runner: "
            + ranking([(g, t.spread) for g, t in entries], " ms", higher_is_better=False)
            + ".",
            "mixed",
            (table_id("mixed"), figure_id("cdf", "mixed")),
        )
    ]


def footprint_findings(summary: Summary) -> list[Finding]:
    entries = [(g, s) for g in footprint_groups(summary) if (s := footprint(g)) is not None]
    if len(entries) < 2:
        return []
    light = min(entries, key=lambda e: e[1].median)
    heavy = max(entries, key=lambda e: e[1].median)
    return [
        Finding(
            "result",
            f"Ops footprint, summed peak {memory_measure(summary)} of API + workers + broker over all "
            "scenarios: "
            + ranking(entries, " MB", higher_is_better=False)
            + f"; lightest vs heaviest: {versus(light, heavy, ' MB', higher_is_better=False)}.",
            None,
            (figure_id("memory"),),
        )
    ]
