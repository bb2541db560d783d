"""What the numbers say, as findings: alerts for missing or duplicated work first, then results, surprises
and noise. Every sentence is computed from a results document; nothing is hand-written about any runner.
Two results are ranked only when their min-max ranges across repeats do not overlap; otherwise they are
called indistinguishable within noise. Partial runs and noisy figures carry their flag wherever cited.
"""

from collections.abc import Callable

from fbt_bench.measuring.stats import NOISY_CV
from fbt_bench.report import result_findings as results
from fbt_bench.report.analysis import (
    PARTIAL_MARK,
    Metric,
    Summary,
    compare,
    email_efficiency,
    enqueue_cost,
    enqueue_p99_at,
    kind_p99,
    latency_p50,
    latency_p99,
    probe_idle_p99,
    probe_loaded_p99,
    system_of,
    throughput,
)
from fbt_bench.report.numbers import figure_id, fmt, fmt_cv, fmt_pct, possessive, repeats_text, table_id
from fbt_bench.report.phrasing import Finding, measured


def findings(summary: Summary) -> list[Finding]:
    """Every finding this run supports, alerts first."""
    out = [f for build in builders() for f in build(summary)]
    order = {"alert": 0, "result": 1, "surprise": 2, "noisy": 3}
    return sorted(out, key=lambda f: order[f.kind])


def builders() -> tuple[Callable[[Summary], list[Finding]], ...]:
    """Every finding builder, in the order their findings are listed within a kind."""
    return (
        completeness,
        results.throughput_findings,
        results.baseline_overhead_findings,
        results.email_efficiency_findings,
        results.interference_findings,
        results.slo_findings,
        results.enqueue_cost_findings,
        results.mixed_findings,
        results.footprint_findings,
        _faults,
        _surprises,
        _noise,
    )


def completeness(summary: Summary) -> list[Finding]:
    """Alerts for missing, duplicated or unrecorded work: what the report's top banner lists."""
    out = []
    for group in summary.repeat_sets.values():
        if group.partial:
            out.append(
                Finding(
                    "alert",
                    f"{group.label}, {group.scenario} ({group.config}): {group.problems()}. "
                    f"Its throughput and latency come from a partial run and are flagged {PARTIAL_MARK} "
                    "wherever they appear.",
                    group.scenario,
                    (table_id(group.scenario),),
                )
            )
        if len(group.records) < summary.repeats:
            out.append(
                Finding(
                    "alert",
                    f"{group.label}, {group.scenario}: only {len(group.records)} of "
                    f"{summary.repeats} repeats recorded.",
                    group.scenario,
                    (table_id(group.scenario),),
                )
            )
    for scenario in summary.scenarios():
        have = {(g.runner, g.config) for g in summary.in_scenario(scenario, baselines=False)}
        for runner, config in summary.systems:
            if (runner, config) not in have:
                out.append(
                    Finding(
                        "alert",
                        f"{summary.system_label(runner, config)} has no {scenario} record: not "
                        "measured or failed.",
                        scenario,
                        (table_id(scenario),),
                    )
                )
    measured = {runner for runner, _ in summary.systems}
    for runner in summary.params.get("runners", []):  # the planned runners, when the harness records them
        if runner not in measured:
            name = summary.display_name(runner)
            out.append(
                Finding("alert", f"{name} was planned but has no records at all.", None, ("reproduce",))
            )
    if not summary.results["complete"]:
        # The harness's own reason (an aborted runner, an interrupt) belongs in the banner too.
        reasons = [w for w in summary.results["warnings"] if w.upper().startswith("PARTIAL RUN")]
        if reasons or not out:
            notes = (
                "; ".join(_brief(w) for w in reasons or summary.results["warnings"]) or "no reason recorded"
            )
            out.append(
                Finding("alert", f"The harness marked this run incomplete: {notes}", None, ("run-warnings",))
            )
    return out


BRIEF_CHARS = 300  # a banner line; the full text (e.g. a process log excerpt) stays in the warnings section


def _brief(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= BRIEF_CHARS else line[: BRIEF_CHARS - 1] + "… (full text under Warnings)"


def _faults(summary: Summary) -> list[Finding]:
    faults = summary.results["faults"]
    out = []
    for runner in dict.fromkeys(system_of(f) for f in faults):
        rows = [f for f in faults if system_of(f) == runner]
        parts = [
            f"{f['fault']} ({f['config']}): {f['lost']} of {f['expected']} lost, "
            f"{f['reexecuted']} re-executed, {f['duplicate_effects']} duplicate effects"
            for f in rows
        ]
        name = summary.display_name(runner)
        kind = "alert" if any(f["duplicate_effects"] for f in rows) else "result"
        out.append(Finding(kind, f"When things break, {name}: " + "; ".join(parts) + ".", None, ("faults",)))
    return out


def _surprises(summary: Summary) -> list[Finding]:
    out = []
    floor = summary.baseline("log-burst", "raw-redis")
    floor_tput = floor.spread(throughput) if floor else None
    if floor_tput is not None:
        for group, tput in measured(summary.in_scenario("log-burst", baselines=False), throughput):
            if compare(tput, floor_tput) > 0:
                out.append(
                    Finding(
                        "surprise",
                        f"{group.tag()} drained log-burst faster ({fmt(tput.median, '/s')}) than the "
                        f"raw-Redis floor ({fmt(floor_tput.median, '/s')}): the baseline is not a floor "
                        "here; check its consumers.",
                        "log-burst",
                        (table_id("log-burst"),),
                    )
                )
    for group, eff in measured(summary.in_scenario("email-io", baselines=False), email_efficiency):
        if not summary.runs_in_api(group.runner) and eff.low > 1.05:
            out.append(
                Finding(
                    "surprise",
                    f"{group.tag()} sent email faster than its slot budget allows "
                    f"({fmt_pct(eff.median)} of ideal): more than the configured slots were working.",
                    "email-io",
                    (table_id("email-io"),),
                )
            )
    for group in summary.in_scenario("cpu-heavy", baselines=False):
        idle, loaded = group.spread(probe_idle_p99), group.spread(probe_loaded_p99)
        if idle and loaded and compare(loaded, idle) < 0:
            out.append(
                Finding(
                    "surprise",
                    f"{possessive(group.tag())} /health p99 was lower under cpu-heavy "
                    f"({fmt(loaded.median, ' ms')}) than idle ({fmt(idle.median, ' ms')}): "
                    "the idle probe was disturbed.",
                    "cpu-heavy",
                    (figure_id("probe", "cpu-heavy"),),
                )
            )
    return out


def headline_metrics(scenario: str, summary: Summary) -> list[tuple[str, Metric]]:
    """The figures each scenario table shows; the noise check covers exactly these."""
    common: list[tuple[str, Metric]] = [
        ("throughput", throughput),
        ("p50", latency_p50),
        ("p99", latency_p99),
    ]
    extra: dict[str, list[tuple[str, Metric]]] = {
        "enqueue": [("enqueue cost", enqueue_cost)]
        + [
            (f"enqueue p99 @ {fmt(rate)}/s", enqueue_p99_at(rate)) for rate in summary.params["enqueue_rates"]
        ],
        "email-io": [("efficiency", email_efficiency)],
        "cpu-heavy": [("/health p99 idle", probe_idle_p99), ("/health p99 loaded", probe_loaded_p99)],
        "mixed": [(f"{kind} p99", kind_p99(kind)) for kind in ("write_log", "send_email", "resize_image")],
    }
    return common + extra.get(scenario, [])


def _noise(summary: Summary) -> list[Finding]:
    out = []
    if summary.repeats < 2:
        out.append(
            Finding(
                "noisy",
                "Only 1 repeat: there is no spread to judge noise by, so every comparison here is "
                "indicative only.",
                None,
                ("how-to-read",),
            )
        )
        return out
    for scenario in summary.scenarios():
        noisy = [
            f"{group.label} {name} (CV {fmt_cv(spread)})"
            for group in summary.in_scenario(scenario)
            for name, metric in headline_metrics(scenario, summary)
            if (spread := group.spread(metric)) is not None and spread.noisy
        ]
        if noisy:
            out.append(
                Finding(
                    "noisy",
                    f"{scenario}: noisy across {repeats_text(summary.repeats)} (CV > {NOISY_CV:.0%}), "
                    "read as rough: " + "; ".join(noisy) + ".",
                    scenario,
                    (table_id(scenario),),
                )
            )
    return out


# ---------------------------------------------------------------------------------------------- how to choose
