"""Findings of the three capacities, the API cost decomposition, cost per task and the load generator.

Each sentence is computed from the document and cites the table or figure its numbers come from. Runners
are ranked only where their ranges across repeats do not overlap (``phrasing``); a ratio to a floor is
printed only where both ran the same path at the same offered load (``capacity.same_load``).
"""

from fbt_bench.report.analysis import Metric, RepeatSet, Summary
from fbt_bench.report.capacity import (
    DECOMPOSITION_TARGET,
    FIDELITY_TARGET,
    at_fraction,
    below_noise,
    cost,
    cpu_fidelity_ratio,
    decomposition,
    decomposition_ratio,
    drained_per_s,
    fidelity_ratio,
    fractions,
    kept_up_pct,
    knee_found,
    loadgen_cpu,
    loadgen_share,
    loadgen_share_budget,
    max_rate_under_slo,
    offered_text,
    runs_tasks_in_api,
    same_load,
    slo_ms,
    tasks_per_core,
    wakeup_cost,
)
from fbt_bench.report.numbers import figure_id, fmt, fmt_pct, fmt_ratio, fmt_spread, table_id
from fbt_bench.report.phrasing import Entry, Finding, measured, ranking, versus
from fbt_bench.report.wording import percentiles_text, rate_unit

# Below this share of its arrival rate completed per second, with an end-to-end p50 above this share of the
# time it sent, a steady window was not steady.
KEPT_UP_PCT = 95.0
BACKLOG_SHARE = 0.25
# The budget for the load generator: beyond it, a rate sweep measures the sender too.
LOADGEN_TARGET_US = 150.0


def _unit(summary: Summary, scenario: str) -> str:
    return " " + rate_unit(scenario, (r for g in summary.in_scenario(scenario) for r in g.records))


def _head_to_head(entries: list[Entry], unit: str) -> str:
    ordered = sorted(entries, key=lambda e: e[1].median, reverse=True)
    return versus(ordered[0], ordered[1], unit)


def accept_findings(summary: Summary) -> list[Finding]:
    groups = summary.in_scenario("accept", baselines=False)
    entries = measured(groups, max_rate_under_slo)
    if not entries:
        return []
    unit = _unit(summary, "accept")
    slo = next((v for g in groups if (v := slo_ms(g)) is not None), None)
    # The harness records 0 when no step passed (the search halved down without a pass): no ceiling then.
    ceiling = [g.tag() for g, s in entries if not knee_found(g) and s.high > 0]
    none_passed = [g.tag() for g, s in entries if s.high == 0]
    text = f"accept: highest rate at which POST /log/ kept p99 under the {fmt(slo, ' ms')} SLO with no errors"
    text += ": " + ranking(entries, unit, higher_is_better=True) + "."
    if len(entries) > 1:
        text += " " + _head_to_head(entries, unit) + "."
    if ceiling:
        text += (
            f" No knee for {', '.join(ceiling)}: the search hit its ceiling with p99 still under the SLO, so "
            "that figure is a lower bound."
        )
    if none_passed:
        text += f" No step passed for {', '.join(none_passed)}, not even the lowest rate the search tried."
    floors = [
        (g, s) for g in summary.in_scenario("accept") if g.baseline and (s := g.spread(max_rate_under_slo))
    ]
    if floors:
        text += (
            " Floors on the same route (not divided: the search steps differ): "
            + "; ".join(f"{g.tag()} {fmt_spread(s, unit)}" for g, s in floors)
            + "."
        )
    refs = (table_id("accept"), figure_id("capacity", "accept"), figure_id("accept-rate", "accept"))
    return [Finding("result", text, "accept", refs)]


def decomposition_findings(summary: Summary) -> list[Finding]:
    parts = []
    for g in summary.in_scenario("accept", baselines=False):
        ratio, api = g.spread(decomposition_ratio), g.spread(decomposition("api_us"))
        if ratio is None or api is None:
            continue
        if runs_tasks_in_api(summary, g):
            continue  # its API CPU includes running the tasks: the table shows it, the target does not apply
        verdict = "within" if ratio.median <= DECOMPOSITION_TARGET else "over"
        share = "below noise" if below_noise(g) else f"{fmt(g.median(decomposition('project_us')))} µs"
        parts.append(
            f"{g.tag()} {fmt_spread(api, ' µs')}: bare route {fmt(g.median(decomposition('bare_route_us')))}"
            f" + library {fmt(g.median(decomposition('library_enqueue_us')))} µs + project {share}, "
            f"{fmt_ratio(ratio.median)} ({verdict} the ×{fmt(DECOMPOSITION_TARGET)} target)"
        )
    if not parts:
        return []
    text = "accept, API CPU per POST /log/ (same run, same rate): " + "; ".join(parts) + "."
    refs = (table_id("accept", "cost"), figure_id("decomposition", "accept"))
    return [Finding("result", text, "accept", refs)]


def fidelity_findings(summary: Summary) -> list[Finding]:
    """Whether the project costs any library more than it may: its drain against the library's own worker.

    Below the floor means the median of the repeats; a runner whose range still reaches the floor is said to
    be within noise of it, not cleared and not condemned.
    """
    groups = summary.in_scenario("drain", baselines=False)
    by_cpu = any("cpu_fidelity" in r["extra"] for g in groups for r in g.records)
    # Side by side, CPU per job is what the project costs the library whatever share of the cores each side
    # got; completions per second also carry how the scheduler split the cores between the two sides.
    entries = measured(groups, cpu_fidelity_ratio if by_cpu else fidelity_ratio)
    ratio = "library ÷ runner, CPU per job" if by_cpu else "runner ÷ library"
    if not entries:
        return []
    below = [g.tag() for g, s in entries if s.high < FIDELITY_TARGET]
    borderline = [g.tag() for g, s in entries if s.median < FIDELITY_TARGET <= s.high]
    cited = "; ".join(f"{g.tag()} {fmt_ratio(s.median)} ({fmt(s.low)}–{fmt(s.high)})" for g, s in entries)
    refs = (table_id("drain"),)
    floor = f"×{fmt(FIDELITY_TARGET)}"
    if not below and not borderline:
        text = (
            f"drain fidelity: every broker runner is at {floor} or more of its library's own minimal worker, "
            f"{_how(summary)} ({ratio}, median and range): {cited}."
        )
        return [Finding("result", text, "drain", refs)]
    parts = []
    if below:
        whose = "its library's" if len(below) == 1 else "their libraries'"
        parts.append(f"{', '.join(below)} below {floor} of {whose} own minimal worker in every repeat")
    if borderline:
        parts.append(f"{', '.join(borderline)} below {floor} in the median, with a range that reaches it")
    causes = [
        f"{g.tag()}: {cause}"
        for g, s in entries
        if s.median < FIDELITY_TARGET and (cause := known_cause(summary, g))
    ]
    text = (
        f"drain fidelity: {'; '.join(parts)}, {_how(summary)}, so those drain figures may carry the project's "
        f"cost as well as the library's ({ratio}, median and range): {cited}."
        + (f" Known cause: {'; '.join(causes)}." if causes else "")
    )
    return [Finding("warning", text, "drain", refs)]


def _how(summary: Summary) -> str:
    references = [
        r["extra"].get("reference") or {}
        for g in summary.in_scenario("drain", baselines=False)
        for r in g.records
    ]
    if any(ref.get("method") == "paired" for ref in references):
        return "drained side by side with it at the same N, layout and options"
    return "measured in the same repeats at the same N, layout and options"


def known_cause(summary: Summary, group: RepeatSet) -> str | None:
    """The runner's own sentence on what the project adds to the library's per-job path (describe()'s
    ``project_cost``), where it has one."""
    cause = summary.results.get("runners", {}).get(group.runner, {}).get("project_cost")
    return str(cause) if isinstance(cause, str) and cause else None


def drain_findings(summary: Summary) -> list[Finding]:
    entries = measured(summary.in_scenario("drain", baselines=False), drained_per_s)
    if not entries:
        return []
    unit = _unit(summary, "drain")
    text = "drain (pre-filled queue, workers started, no HTTP): " + ranking(
        entries, unit, higher_is_better=True
    )
    text += "." + (" " + _head_to_head(entries, unit) + "." if len(entries) > 1 else "")
    floor = summary.baseline("drain", "raw-redis")
    floor_rate = floor.spread(drained_per_s) if floor else None
    if floor and floor_rate:
        shares = [
            f"{g.tag()} {fmt_pct(s.median / floor_rate.median)}"
            for g, s in entries
            if same_load(g, floor) and floor_rate.median
        ]
        text += f" Floor {floor.tag()}: {fmt_spread(floor_rate, unit)}"
        text += f"; share of it at the same N: {', '.join(shares)}." if shares else "."
    refs = (table_id("drain"), figure_id("drain", "drain"))
    return [Finding("result", text, "drain", refs)]


def _backlogged(group: RepeatSet) -> bool:
    """Whether a repeat's end-to-end p50 was a sizable part of its sending time: what a backlog growing over
    the window looks like. A runner that kept up but answers slowly (a poll interval) finishes its last jobs
    a latency after the window, which lowers completed ÷ arrivals on a short window without any backlog."""
    for record in group.records:
        extra, p50 = record.get("extra", {}), record.get("latency_ms", {}).get("p50")
        sending_s = float(extra.get("warmup_s") or 0.0) + float(extra.get("window_s") or 0.0)
        if isinstance(p50, int | float) and sending_s > 0 and p50 / 1000.0 > BACKLOG_SHARE * sending_s:
            return True
    return False


def steady_findings(summary: Summary) -> list[Finding]:
    out = []
    for fraction in fractions(summary):
        parts = []
        for group in summary.in_scenario("steady"):
            g = at_fraction(group, fraction)
            if g is None:
                continue
            shapes = [r["latency_ms"] for r in g.records]
            parts.append(f"{g.tag()} at {offered_text(g)}: {percentiles_text(shapes)}")
            behind = g.spread(kept_up_pct)
            if behind is not None and behind.low < KEPT_UP_PCT and _backlogged(g):
                out.append(
                    Finding(
                        "surprise",
                        f"{g.tag()} fell behind at {fmt_pct(fraction)} of its own capacity: it completed "
                        f"{fmt(behind.low)}% of the arrival rate in its worst repeat (median {fmt(behind.median)}%), "
                        "so its latency there is a growing backlog, not a steady state; its capacity was measured "
                        "earlier in the same repeat, so something else took the workers' time",
                        "steady",
                        (table_id("steady"),),
                    )
                )
        if parts:
            out.append(
                Finding(
                    "result",
                    f"steady at {fmt_pct(fraction)} of each runner's own capacity, end-to-end latency "
                    "(offered rates differ, so not ranked): " + "; ".join(parts) + ".",
                    "steady",
                    (table_id("steady"),),
                )
            )
    return out


def cost_findings(summary: Summary) -> list[Finding]:
    groups = summary.in_scenario("drain", baselines=False)
    entries = measured(groups, cost("total"))
    if len(entries) < 2:
        return []
    per_core = "; ".join(f"{g.tag()} {fmt_spread(s)}" for g, _ in entries if (s := g.spread(tasks_per_core)))
    text = "drain, CPU per task (broker + workers, no HTTP): " + ranking(
        entries, " µs", higher_is_better=False
    )
    text += "." + (f" Tasks per second per core: {per_core}." if per_core else "")
    return [Finding("result", text, "drain", ("tab-cost", figure_id("cost")))]


def _worst(summary: Summary, metric: Metric) -> tuple[float, RepeatSet] | None:
    values = [(v, g) for g in summary.repeat_sets.values() for r in g.records if (v := metric(r)) is not None]
    return max(values, key=lambda pair: pair[0], default=None)


def _top_accept_step(summary: Summary) -> tuple[float, float] | None:
    """(rate, generator µs per request) of the highest-rate accept step any runner ran."""
    steps = [
        (float(step["rate"]), float(step["loadgen_cpu_us_per_request"]))
        for g in summary.in_scenario("accept")
        for r in g.records
        for step in (r.get("extra") or {}).get("steps") or []
        if step.get("loadgen_cpu_us_per_request") is not None
    ]
    return max(steps, default=None)


def loadgen_findings(summary: Summary) -> list[Finding]:
    """Could the load generator have been the bottleneck (its share of a core), and what a request cost it
    against the per-request budget, with the machine's wake-up cost beside it."""
    findings: list[Finding] = []
    share_budget = loadgen_share_budget(summary.params)
    busiest = _worst(summary, loadgen_share)
    if busiest is not None:
        share, group = busiest
        over = share > share_budget
        verdict = (
            "over budget: there the generator could be the bottleneck, and that record's rates measure the "
            "sender as well as the system"
            if over
            else "so it was not the bottleneck"
        )
        findings.append(
            Finding(
                "alert" if over else "result",
                f"The load generator used at most {fmt_pct(share)} of a core in any record ({group.label}, "
                f"{group.scenario}; budget {fmt_pct(share_budget)}): {verdict}.",
                None,
                ("what-was-run",),
            )
        )
    worst = _worst(summary, loadgen_cpu)
    if worst is None:
        return findings
    value, group = worst
    text = (
        f"Per request the load generator spent at most {fmt(value, ' µs')} of CPU ({group.label}, "
        f"{group.scenario}); budget {fmt(LOADGEN_TARGET_US, ' µs')}: "
    )
    if value <= LOADGEN_TARGET_US:
        return [*findings, Finding("result", text + "within it.", None, ("what-was-run",))]
    text += "above it."
    wakeup = wakeup_cost(summary.results)
    if wakeup is not None:
        text += (
            f" A sleep and wake-up of a Python process costs {fmt(wakeup[0], ' µs')} of CPU on this "
            f"machine (n {wakeup[1]}, measured before the run), and at low rates each request costs the "
            "generator one or two wake-ups of its own, so there the per-request figure is mostly the machine's."
        )
    top = _top_accept_step(summary)
    if top is not None:
        rate, cost_us = fmt(top[0], "/s"), fmt(top[1], " µs")
        text += f" At the highest rate any accept step offered ({rate}), a request cost {cost_us}."
    return [*findings, Finding("surprise", text, None, ("what-was-run",))]


def drain_surprises(summary: Summary) -> list[Finding]:
    floor = summary.baseline("drain", "raw-redis")
    floor_rate = floor.spread(drained_per_s) if floor else None
    if floor is None or floor_rate is None:
        return []
    out = []
    unit = _unit(summary, "drain")
    for g, s in measured(summary.in_scenario("drain", baselines=False), drained_per_s):
        if same_load(g, floor) and s.low > floor_rate.high:
            out.append(
                Finding(
                    "surprise",
                    f"{g.tag()} drained faster ({fmt(s.median, unit)}) than the raw-Redis floor "
                    f"({fmt(floor_rate.median, unit)}) at the same N: the floor is not a floor here; check "
                    "its consumers.",
                    "drain",
                    (table_id("drain"),),
                )
            )
    return out
