"""The report's scenario sections: for each scenario its blurb, its tables and its figures."""

from collections.abc import Callable
from dataclasses import dataclass, field

from fbt_bench.profiles import PROFILES, SCENARIOS
from fbt_bench.report import burst, capacity_figures, capacity_tables, cpu_sweep, figures, peers, tables
from fbt_bench.report.analysis import Summary
from fbt_bench.report.figures import Chart
from fbt_bench.report.tables import Table

SCENARIO_BLURBS = {
    "accept": "How fast the API takes tasks: open-loop arrivals on POST /log/, workers running, the rate "
    "searched (doubling, then bisection) for the highest one whose p99 stays under the SLO with no errors.",
    "drain": "How fast the workers empty a full queue: N jobs enqueued through the runner's own client with "
    "its workers stopped, then the workers started. No HTTP.",
    "steady": "Latency in normal operation: open-loop arrivals at fixed fractions of each runner's own "
    "capacity, long enough for at least 1,000 completions after a warm-up that is excluded.",
    "email-io": "Emails to an SMTP sink that takes a fixed delay per message: pure I/O wait.",
    "cpu-heavy": "Image resizes while a probe hits GET /health at a fixed rate: does the API keep answering?",
    "cpu-sweep": cpu_sweep.BLURB,
    "burst": burst.BLURB,
    "mixed": "80% log, 15% email, 5% resize at a fixed arrival rate: do light tasks wait behind heavy ones?",
    "enqueue": "(older scenario) Open-loop constant-arrival load on POST /log/ at a fixed list of rates.",
    "log-burst": "(older scenario) N log tasks sent as fast as the API takes them: the rate measures the "
    "sender and the HTTP path as much as the workers.",
}
NOT_MEASURED = "not measured in this run"
MAIN_PROFILES = ("quick", "default", "full")


def run_by(scenario: str) -> str:
    """Which of the main profiles run ``scenario``, and how to ask for it by name."""
    names = [name for name in MAIN_PROFILES if scenario in (PROFILES[name].scenarios or SCENARIOS)]
    return (
        f" Run by the {' and '.join(names)} profile{'s' if len(names) > 1 else ''} "
        f"(fbt-bench compare --scenarios {scenario} names it)."
    )


def blurb(scenario: str) -> str:
    text = SCENARIO_BLURBS[scenario]
    return text + run_by(scenario) if scenario in SCENARIOS else text


@dataclass
class ScenarioSection:
    scenario: str
    blurb: str
    table: Table
    charts: list[Chart] = field(default_factory=list)
    more: list[Table] = field(default_factory=list)  # further tables, after the charts


def scenario_section(summary: Summary, scenario: str) -> ScenarioSection:
    build = CAPACITY_SECTIONS.get(scenario, _workload_section)
    return build(summary, scenario)


def _present(*charts: Chart | None) -> list[Chart]:
    return [c for c in charts if c is not None]


def _accept_section(summary: Summary, scenario: str) -> ScenarioSection:
    more = capacity_tables.decomposition_table(summary)
    return ScenarioSection(
        scenario,
        SCENARIO_BLURBS[scenario],
        capacity_tables.accept_table(summary),
        _present(
            capacity_figures.accept_capacity_chart(summary),
            capacity_figures.accept_rate_chart(summary),
            capacity_figures.decomposition_chart(summary),
        ),
        [more] if more else [],
    )


def _drain_section(summary: Summary, scenario: str) -> ScenarioSection:
    published = peers.peers_table(summary)
    return ScenarioSection(
        scenario,
        SCENARIO_BLURBS[scenario],
        capacity_tables.drain_table(summary),
        _present(capacity_figures.drain_chart(summary)),
        [published] if published else [],
    )


def _steady_section(summary: Summary, scenario: str) -> ScenarioSection:
    return ScenarioSection(scenario, SCENARIO_BLURBS[scenario], capacity_tables.steady_table(summary))


def _cpu_sweep_section(summary: Summary, scenario: str) -> ScenarioSection:
    table = cpu_sweep.sweep_table(summary)
    assert table is not None  # the section exists only where the run has cpu-sweep records
    return ScenarioSection(scenario, SCENARIO_BLURBS[scenario], table)


def _burst_section(summary: Summary, scenario: str) -> ScenarioSection:
    table = burst.burst_table(summary)
    assert table is not None  # the section exists only where the run has burst records
    return ScenarioSection(scenario, SCENARIO_BLURBS[scenario], table)


def _workload_section(summary: Summary, scenario: str) -> ScenarioSection:
    section = ScenarioSection(
        scenario, SCENARIO_BLURBS.get(scenario, ""), tables.scenario_table(summary, scenario)
    )
    groups = summary.in_scenario(scenario)
    cdf = figures.cdf_chart(summary, scenario, groups)
    if cdf:
        section.charts.append(cdf)
    if scenario in {"log-burst", "email-io", "cpu-heavy"}:
        section.charts.append(figures.throughput_chart(summary, scenario, groups))
    if scenario == "cpu-heavy":
        probe = figures.probe_chart(summary, groups)
        if probe:
            section.charts.append(probe)
    if scenario == "enqueue":
        section.charts.append(figures.enqueue_chart(summary, [g for g in groups if not g.baseline]))
    return section


CAPACITY_SECTIONS: dict[str, Callable[[Summary, str], ScenarioSection]] = {
    "accept": _accept_section,
    "drain": _drain_section,
    "steady": _steady_section,
    "cpu-sweep": _cpu_sweep_section,
    "burst": _burst_section,
}
