"""What the numbers say, as findings: alerts for missing or duplicated work first, then results, surprises
and noise. Every sentence is computed from a results document; nothing is hand-written about any runner.
Two results are ranked only when their min-max ranges across repeats do not overlap; otherwise they are
called indistinguishable within noise. Partial runs and noisy figures carry their flag wherever cited.
"""

from collections.abc import Callable
from typing import Any

from fbt_bench.measuring.stats import NOISY_CV
from fbt_bench.report import capacity_findings as capacities
from fbt_bench.report import result_findings as results
from fbt_bench.report.analysis import (
    PARTIAL_MARK,
    Metric,
    Summary,
    compare,
    email_efficiency,
    latency_p50,
    latency_p99,
    on_default_broker,
    probe_idle_p99,
    probe_loaded_p99,
    system_of,
    throughput,
)
from fbt_bench.report.capacity import cost, drained_per_s, max_rate_under_slo
from fbt_bench.report.numbers import figure_id, fmt, fmt_cv, fmt_pct, possessive, repeats_text, table_id
from fbt_bench.report.phrasing import Finding, measured
from fbt_bench.report.tables import FAULT_COUNTS, Table, fault_groups, fault_label, span


def findings(summary: Summary) -> list[Finding]:
    """Every finding this run supports, alerts first."""
    out = [f for build in builders() for f in build(summary)]
    order = {"alert": 0, "warning": 1, "result": 2, "surprise": 3, "noisy": 4}
    return sorted(out, key=lambda f: order[f.kind])


def builders() -> tuple[Callable[[Summary], list[Finding]], ...]:
    """Every finding builder, in the order their findings are listed within a kind."""
    return (
        completeness,
        capacities.loadgen_findings,
        capacities.accept_findings,
        capacities.decomposition_findings,
        capacities.drain_findings,
        capacities.fidelity_findings,
        capacities.steady_findings,
        capacities.cost_findings,
        results.throughput_findings,
        results.email_efficiency_findings,
        results.interference_findings,
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
        if (recorded := summary.repeats_recorded(group)) < (
            planned := summary.repeats_planned(group.scenario)
        ):
            out.append(
                Finding(
                    "alert",
                    f"{group.label}, {group.scenario}: only {recorded} of {planned} repeats recorded.",
                    group.scenario,
                    (table_id(group.scenario),),
                )
            )
    for scenario in summary.scenarios():
        have = {(g.runner, g.config) for g in summary.in_scenario(scenario, baselines=False)}
        for runner, config in summary.systems:
            # A runner whose tasks run in the API has no queue to drain: no drain record by design.
            # The profile's once-scenarios are measured on each runner's default broker only.
            by_design = (scenario == "drain" and summary.runs_in_api(runner)) or (
                scenario in (summary.params.get("once") or []) and not on_default_broker(runner)
            )
            if (runner, config) not in have and not by_design:
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
    if not summary.params.get("scenarios"):  # a `make faults` run: its runners are measured there only
        measured |= {system_of(f) for f in summary.results["faults"]}
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
    """⛔ first for a runner that runs tasks in the API and lost some, then for any loss in a safe
    configuration; ⚠ for duplicates a receiver can drop by Message-ID; then a result line per runner."""
    groups = fault_groups(summary.results["faults"])
    in_api = [g for g in groups if summary.runs_in_api(system_of(g[0])) and any(f["lost"] for f in g)]
    unsafe = [g for g in groups if g not in in_api and _safe(g[0]) and any(f["lost"] for f in g)]
    out = [_loss_alert(summary, g) for g in in_api + unsafe]
    out += _defaults_losses(summary, groups)
    out += [_hang_alert(summary, g) for g in groups if any(_answers(f).get("hang") for f in g)]
    out += _slow_link(summary, groups)
    for g in groups:
        copies = [d for f in g for d in f.get("duplicates", [])]
        if any(f["duplicate_effects"] for f in g):
            same = all(d["same_message_id"] for d in copies)
            text = (
                f"{_cell(summary, g)}: {span([f['duplicate_effects'] for f in g])} emails delivered twice"
                + (
                    ", every copy with the same Message-ID: a receiver that drops a Message-ID it has already "
                    "seen keeps exactly one."
                    if same
                    else ", some copies with different Message-IDs, which no receiver can tell apart."
                )
            )
            out.append(Finding("warning" if same else "alert", text, None, ("faults",)))
    firsts: dict[str, dict[str, Any]] = {}
    for g in groups:
        firsts.setdefault(system_of(g[0]), g[0])
    for runner, first in firsts.items():
        parts = [
            f"{fault_label(g[0])} ({g[0]['config']}, {_trials(len(g))}): "
            + ", ".join(f"{span([f.get(c, 0) for f in g])} {c.replace('_', ' ')}" for c in FAULT_COUNTS)
            + f" of {span([f['expected'] for f in g])}"
            for g in groups
            if system_of(g[0]) == runner
        ]
        name = _system(summary, first)
        out.append(
            Finding("result", f"When things break, {name}: " + "; ".join(parts) + ".", None, ("faults",))
        )
    return out


def _defaults_losses(summary: Summary, groups: list[list[dict[str, Any]]]) -> list[Finding]:
    """Where a library out of the box lost accepted work that its safe configuration kept: the difference the
    two configurations exist to show, and work lost after a 200: an alert, not a line in a result. Short, for
    the first screen: the why is the cell's sentence under When things break."""

    def cell(g: list[dict[str, Any]]) -> tuple[str, str, str]:
        f = g[0]
        return system_of(f), f["fault"], f.get("appendfsync", "") or f.get("variant", "")

    safe = {cell(g): g for g in groups if g[0]["config"] == "safe"}
    out = []
    for g in groups:
        kept = safe.get(cell(g))
        if g[0]["config"] != "defaults" or kept is None or not any(f["lost"] for f in g):
            continue
        if any(f["lost"] for f in kept):
            continue
        text = (
            f"{_cell(summary, g)}: out of the box it lost {span([f['lost'] for f in g])} of "
            f"{span([f['expected'] for f in g])} accepted over {_trials(len(g))}; its safe configuration lost "
            f"none of {span([f['expected'] for f in kept])}."
        )
        out.append(Finding("alert", text, None, ("faults",)))
    return out


def _slow_link(summary: Summary, groups: list[list[dict[str, Any]]]) -> list[Finding]:
    """One line: what a lossy, jittery broker link cost each system's drain, against the clean link on the
    same stack in the same trial (a ratio, so the relay's own share of the path cancels out)."""
    slow = [g for g in groups if g[0]["fault"] == "slow-link" and all(f.get("throughput") for f in g)]
    if not slow:
        return []
    by_system = {_system(summary, g[0]): [f["throughput"]["ratio"] or 0.0 for f in g] for g in slow}
    ratios = [
        f"{name} ×{min(r):.2f}" + ("" if min(r) == max(r) else f"–×{max(r):.2f}")
        for name, r in sorted(by_system.items(), key=lambda item: -min(item[1]))
    ]
    first = slow[0][0]
    impaired = first.get("impairment") or {}
    how = (
        f"{fmt(impaired.get('loss_pct'))}% of chunks held {fmt(impaired.get('stall_ms'))} ms, jitter up to "
        f"{fmt(impaired.get('jitter_ms'))} ms"
        + (", emulated in a relay" if impaired.get("method") == "relay" else "")
    )
    trials = max(len(g) for g in slow)
    text = (
        f"Over a lossy, jittery broker link ({how}), work drained at {'; '.join(ratios)} of the clean link's "
        f"rate ({first['throughput']['n']} emails per drain, {_trials(trials)}; lost and duplicated are in the "
        "faults table)."
    )
    return [Finding("result", text, None, ("faults",))]


def _trials(n: int) -> str:
    return "1 trial" if n == 1 else f"{n} trials"


def _answers(record: dict[str, Any]) -> dict[str, int]:
    """What the API answered while the broker was out (broker-restart, broker-full, partition), by kind."""
    return dict((record.get("outage") or {}).get("answers") or {})


def _hang_alert(summary: Summary, group: list[dict[str, Any]]) -> Finding:
    """The API promised a quick 503 when the broker cannot take a job; a hang breaks that promise."""
    state = {"broker-full": "full", "partition": "cut off from it"}.get(group[0]["fault"], "down")
    hung = span([_answers(f).get("hang", 0) for f in group])
    sent = span([(f.get("outage") or {}).get("requests", 0) for f in group])
    text = (
        f"{_cell(summary, group)}: the API left {hung} of {sent} requests unanswered within the probe's timeout "
        f"while the broker was {state}, over {_trials(len(group))}: a client waits instead of getting a 503 it "
        "can retry."
    )
    return Finding("alert", text, None, ("faults",))


def _safe(record: dict[str, Any]) -> bool:
    """A configuration that promises no loss: the runner's safe config (broker-crash: with fsync always)."""
    return bool(record["config"] == "safe" and record.get("appendfsync", "always") == "always")


def _system(summary: Summary, f: dict[str, Any]) -> str:
    """A fault record's system by name, its broker included off the runner's default: Celery on RabbitMQ is
    not Celery."""
    return summary.display_name(system_of(f))


def _cell(summary: Summary, group: list[dict[str, Any]]) -> str:
    f = group[0]
    return f"{_system(summary, f)} ({f['config']}), {fault_label(f)}"


def _loss_alert(summary: Summary, group: list[dict[str, Any]]) -> Finding:
    refused = span([f.get("refused", 0) for f in group])
    text = (
        f"{_cell(summary, group)}: {span([f['lost'] for f in group])} of {span([f['expected'] for f in group])} "
        f"accepted tasks lost for good over {_trials(len(group))} (requests refused: {refused}). "
        f"{group[0]['mechanism'].rstrip('.')}."
    )
    return Finding("alert", text, None, ("faults",))


def _surprises(summary: Summary) -> list[Finding]:
    out = capacities.drain_surprises(summary)
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
        # p99 of both, or neither: a surprise needs the same percentile on both sides.
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


def headline_metrics(scenario: str, summary: Summary) -> list[tuple[str, Metric]]:  # noqa: ARG001 (one signature for every builder of its kind)
    """The figures each scenario table shows; the noise check covers exactly these."""
    common: list[tuple[str, Metric]] = [("throughput", throughput), ("p50", latency_p50)]
    # steady mixes fractions in one repeat set, its spread is per fraction (its table); percentiles with
    # too few samples for a p99 are not judged for noise here (the tables print the max instead).
    own: dict[str, list[tuple[str, Metric]]] = {
        "accept": [("max rate under SLO", max_rate_under_slo)],
        "drain": [("drained/s", drained_per_s), ("CPU µs/task", cost("total"))],
        "steady": [],
        "email-io": [*common, ("efficiency", email_efficiency)],
        "cpu-heavy": common,
        "mixed": [("p50", latency_p50)],
        # One record per placement in a repeat set: their thresholds have their own table, not a spread here.
        "cpu-sweep": [],
        "burst": [],
    }
    return own.get(scenario, [*common, ("p99", latency_p99)])


def _noise(summary: Summary) -> list[Finding]:
    out = []
    if summary.repeats < 2 and summary.systems:  # a faults-only run has trials, not repeats
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


def noise_metrics(scenario: str, summary: Summary) -> list[tuple[str, Metric]]:
    """The headline figures, and the two the harness checks in every scenario but steady (its repeat set mixes
    fractions): throughput and end-to-end p50."""
    found = dict(headline_metrics(scenario, summary))
    if scenario not in ("steady", "cpu-sweep", "burst"):
        found.setdefault("throughput", throughput)
        found.setdefault("e2e p50", latency_p50)
    return list(found.items())


def noise_table(summary: Summary) -> Table | None:
    """Every headline figure whose repeats vary by more than NOISY_CV: one row each, for the appendix."""
    if summary.repeats < 2:
        return None
    rows = tuple(
        (group.label, scenario, name, fmt_cv(spread), f"{fmt(spread.low)}–{fmt(spread.high)}", str(spread.n))
        for scenario in summary.scenarios()
        for group in summary.in_scenario(scenario)
        for name, metric in noise_metrics(scenario, summary)
        if (spread := group.spread(metric)) is not None and spread.noisy
    )
    if not rows:
        return None
    return Table(
        id="tab-noise",
        title=f"Figures whose repeats vary by more than {NOISY_CV:.0%} (CV): read them as rough",
        columns=("Runner", "Scenario", "Figure", "CV", "min–max", "repeats"),
        rows=rows,
    )
