"""The findings each scenario's numbers support: throughput, overhead against the floors, the slot budget,
interference, the SLO, enqueue cost, mixed latency and the ops footprint."""

from collections.abc import Sequence

from fbt_bench.report.analysis import (
    Summary,
    email_efficiency,
    enqueue_cost,
    footprint,
    footprint_groups,
    kind_p99,
    latency_p50,
    max_rate_under_slo,
    probe_idle_p99,
    probe_loaded_p99,
    throughput,
    worst_slo_rate,
)
from fbt_bench.report.numbers import (
    figure_id,
    fmt,
    fmt_pct,
    fmt_ratio,
    fmt_spread,
    possessive,
    repeats_text,
    table_id,
)
from fbt_bench.report.phrasing import Entry, Finding, compare, measured, ranking, slo_rate_text, versus


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
    # mixed is open-loop at a fixed rate, so its throughput is the offered rate; its finding is about latency.
    verbs = {"log-burst": "drained", "email-io": "sent", "cpu-heavy": "resized"}
    for scenario, verb in verbs.items():
        entries = measured(summary.in_scenario(scenario, baselines=False), throughput)
        if len(entries) < 2:
            continue
        ordered = sorted(entries, key=lambda e: e[1].median, reverse=True)
        top, second = ordered[0], ordered[1]
        if compare(top[1], second[1]) == 0:
            head = versus(top, second, "/s")
        else:
            ratio = top[1].median / second[1].median if second[1].median else None
            head = (
                f"{top[0].tag()} {verb} {fmt(top[1].median)} tasks/s, {fmt_ratio(ratio)} {second[0].tag()} "
                f"({fmt(second[1].median, '/s')}, the runner-up)"
            )
        out.append(
            Finding(
                "result",
                f"{scenario}: {head}{_budget_note(summary, [top, second])}. "
                f"Median throughput of {repeats_text(summary.repeats)}: "
                f"{ranking(entries, '/s', higher_is_better=True)}.",
                scenario,
                (figure_id("throughput", scenario), table_id(scenario)),
            )
        )
    return out


def baseline_overhead_findings(summary: Summary) -> list[Finding]:
    out = []
    # email-io is bound by the SMTP sink, not the queue, so only log-burst measures queue overhead.
    for scenario in ("log-burst",):
        floor = summary.baseline(scenario, "raw-redis")
        direct = summary.baseline(scenario, "direct-call")
        if floor is None or (floor_p50 := floor.spread(latency_p50)) is None:
            continue
        floor_tput = floor.spread(throughput)
        parts = []
        for group in summary.in_scenario(scenario, baselines=False):
            p50, tput = group.spread(latency_p50), group.spread(throughput)
            if p50 is None or tput is None:
                continue
            latency_x = p50.median / floor_p50.median if floor_p50.median else None
            share = tput.median / floor_tput.median if floor_tput and floor_tput.median else None
            parts.append(
                f"{group.tag()} {fmt_ratio(latency_x)} the raw-Redis p50 round trip "
                f"({fmt(p50.median, ' ms')}), {fmt_pct(share)} of its throughput"
            )
        if not parts:
            continue
        floors = f"raw Redis {fmt(floor_p50.median, ' ms')} p50, {fmt_spread(floor_tput, '/s')}"
        if direct is not None:
            floors += f"; direct call {fmt_spread(direct.spread(throughput), '/s')}"
        out.append(
            Finding(
                "result",
                f"{scenario} overhead against the floors ({floors}): " + "; ".join(parts) + ".",
                scenario,
                (table_id(scenario), figure_id("cdf", scenario)),
            )
        )
    return out


def email_efficiency_findings(summary: Summary) -> list[Finding]:
    groups = summary.in_scenario("email-io", baselines=False)
    entries = measured(groups, email_efficiency)
    if not entries:
        return []
    slots, delay = summary.params["slots"], summary.params["smtp_delay_ms"]
    ideal = slots / (delay / 1000) if delay else None
    parts = []
    for group, eff in entries:
        tput = group.spread(throughput)
        parts.append(f"{group.tag()} {fmt_spread(tput, '/s')} = {fmt_pct(eff.median)} of ideal")
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
                    f"{fmt_spread(tput, '/s')}, {fmt_ratio(eff.median)} the {slots}-slot ideal, because "
                    f"Starlette runs sync tasks on anyio's {tokens}-token threadpool (ideal {tokens} / "
                    f"{fmt(delay, ' ms')} = {fmt(own_ideal, '/s')}; {fmt_pct(own)} of that). "
                    "The same pool serves the API's sync endpoints.",
                    "email-io",
                    (figure_id("throughput", "email-io"), table_id("email-io")),
                )
            )
    return out


def interference_findings(summary: Summary) -> list[Finding]:
    rows = []
    for group in summary.in_scenario("cpu-heavy", baselines=False):
        idle, loaded = group.spread(probe_idle_p99), group.spread(probe_loaded_p99)
        if idle is None or loaded is None:
            continue
        rows.append((group, idle, loaded))
    if not rows:
        return []
    rows.sort(key=lambda row: row[2].median, reverse=True)
    parts = []
    for group, idle, loaded in rows:
        ratio = loaded.median / idle.median if idle.median else None
        parts.append(
            f"{possessive(group.tag())} /health p99 grew from {fmt(idle.median, ' ms')} to "
            f"{fmt_spread(loaded, ' ms')} ({fmt_ratio(ratio)})"
        )
    text = "under cpu-heavy, " + "; ".join(parts) + "."
    if len(rows) > 1:
        worst, calmest = rows[0], rows[-1]
        text += " Loaded /health p99: " + versus((worst[0], worst[2]), (calmest[0], calmest[2]), " ms") + "."
    return [Finding("result", text, "cpu-heavy", (figure_id("probe", "cpu-heavy"), table_id("cpu-heavy")))]


def slo_findings(summary: Summary) -> list[Finding]:
    groups = summary.in_scenario("enqueue", baselines=False)
    if not groups:
        return []
    slo, rates = summary.params["slo_ms"], summary.params["enqueue_rates"]
    parts = []
    for group in groups:
        per_repeat = [max_rate_under_slo(r) for r in group.records]
        text = f"{group.tag()} {slo_rate_text(worst_slo_rate(group), rates)}"
        if len(set(per_repeat)) > 1:
            text += " (repeats disagree: " + ", ".join(slo_rate_text(v, rates) for v in per_repeat) + ")"
        parts.append(text)
    tested = f"{fmt(min(rates))}–{fmt(max(rates))}/s" if len(rates) > 1 else f"{fmt(rates[0])}/s"
    return [
        Finding(
            "result",
            f"Highest enqueue rate with p99 under the {fmt(slo, ' ms')} SLO (tested {tested}, worst repeat): "
            + "; ".join(parts)
            + ".",
            "enqueue",
            (figure_id("enqueue", "enqueue"), table_id("enqueue")),
        )
    ]


def enqueue_cost_findings(summary: Summary) -> list[Finding]:
    entries = measured(summary.in_scenario("enqueue", baselines=False), enqueue_cost)
    if len(entries) < 2:
        return []
    return [
        Finding(
            "result",
            "API + broker CPU per enqueued task: " + ranking(entries, " µs", higher_is_better=False) + ".",
            "enqueue",
            (table_id("enqueue"),),
        )
    ]


def mixed_findings(summary: Summary) -> list[Finding]:
    entries = measured(summary.in_scenario("mixed", baselines=False), kind_p99("write_log"))
    if len(entries) < 2:
        return []
    p = summary.params
    return [
        Finding(
            "result",
            f"mixed ({fmt(p['mixed_rate'], '/s')} for {fmt(p['mixed_duration_s'], ' s')}): light "
            "write_log tasks' end-to-end p99 while emails and resizes share the runner: "
            + ranking(entries, " ms", higher_is_better=False)
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
            "Ops footprint, summed peak RSS of API + workers + broker over all scenarios: "
            + ranking(entries, " MB", higher_is_better=False)
            + f"; heaviest vs lightest: {versus(heavy, light, ' MB')}.",
            None,
            (figure_id("memory"),),
        )
    ]
