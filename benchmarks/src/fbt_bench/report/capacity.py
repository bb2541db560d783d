"""The three capacities (accept, drain, steady) and cost per task, as the report reads them from records.

- accept: the highest open-loop rate at which POST /log/ kept p99 under the SLO with no errors; a record
  whose search hit its ceiling (``knee_found`` false) gives a lower bound, not a knee.
- drain: a pre-filled queue emptied by the workers, no HTTP; drained/s from the first to the last completion.
- steady: open-loop arrivals at fractions of each runner's own capacity, so offered loads differ by runner.
- cost: CPU µs per completed task by process group (api, broker, workers, total), from the sampler.

``same_load`` is the rule for every ratio the report prints: two figures are compared only when they were
measured on the same path at the same offered load.
"""

from typing import Any

from fbt_bench.report.analysis import Metric, Record, RepeatSet, Summary, extra_metric
from fbt_bench.report.numbers import fmt
from fbt_bench.scenarios.record import kept_up

COST_PARTS = ("api", "broker", "workers")
DECOMPOSITION_PARTS = ("bare_route_us", "library_enqueue_us", "project_us")
DECOMPOSITION_LABELS = {
    "bare_route_us": "bare FastAPI route",
    "library_enqueue_us": "library enqueue",
    "project_us": "project's share",
}
# The target: the project's POST /log/ costs at most this times (bare route + library enqueue).
DECOMPOSITION_TARGET = 1.15
# Workloads whose offered load is fixed by the run's parameters, the same for every runner.
FIXED_LOAD_SCENARIOS = frozenset({"email-io", "cpu-heavy", "mixed"})
SAME_RATE_TOLERANCE = 0.01

max_rate_under_slo = extra_metric("max_rate_under_slo")
drained_per_s = extra_metric("drained_per_s")
# The fidelity check (fbt_tasks.reference): the library's own minimal worker on the same N, layout and broker.
fidelity_ratio = extra_metric("fidelity")
# The same, side by side (fbt_bench.scenarios.paired): library ÷ runner CPU per job in the shared window.
cpu_fidelity_ratio = extra_metric("cpu_fidelity")
# CPU of every group from the workers' start until they reported ready, kept out of the drain's cost per task.
startup_cpu_s = extra_metric("startup_cpu_s")
# The floor: the project may cost a library at most 10% of its own drain rate.
FIDELITY_TARGET = 0.9
first_to_last_s = extra_metric("first_to_last_s")


def cost(part: str) -> Metric:
    """CPU µs per task of one component ("api", "broker", "workers", "total"); None where not measured."""

    def metric(record: Record) -> float | None:
        value = (record.get("cpu_us_per_task") or {}).get(part)
        return float(value) if isinstance(value, int | float) else None

    return metric


def record_number(field: str) -> Metric:
    def metric(record: Record) -> float | None:
        value = record.get(field)
        return float(value) if isinstance(value, int | float) else None

    return metric


tasks_per_core = record_number("tasks_per_s_per_core")
loadgen_cpu = record_number("loadgen_cpu_us_per_request")
loadgen_share = record_number("loadgen_core_share")


def loadgen_share_budget(params: dict[str, Any]) -> float:
    """The share of a core the load generator may use (the accept search's own bound; older files: 25%)."""
    return float(params.get("accept_loadgen_core_share") or 0.25)


def wakeup_cost(results: dict[str, Any]) -> tuple[float, int] | None:
    """(median µs, n) of the machine's measured wake-up cost, where the run recorded one."""
    wakeup = (results.get("environment") or {}).get("wakeup_cpu_us")
    if isinstance(wakeup, dict) and isinstance(wakeup.get("median"), int | float):
        return float(wakeup["median"]), int(wakeup.get("n") or 0)
    return None


def decomposition(part: str) -> Metric:
    return extra_metric("decomposition", part)


def decomposition_ratio(record: Record) -> float | None:
    """api_us / (bare route + library enqueue): how much the project costs on top of the two."""
    parts = record.get("extra", {}).get("decomposition") or {}
    api, bare, library = parts.get("api_us"), parts.get("bare_route_us"), parts.get("library_enqueue_us")
    if not (
        isinstance(api, int | float) and isinstance(bare, int | float) and isinstance(library, int | float)
    ):
        return None
    if not bare + library:
        return None
    return float(api) / float(bare + library)


def below_noise(group: RepeatSet) -> bool:
    """Whether the project's share of the API's CPU is smaller than its own spread across repeats, or not above
    zero (the bare route measured dearer than the API without the library's call, which no cost can be): then
    it reads "below noise", never as a negative or a precise figure."""
    share = group.spread(decomposition("project_us"))
    if share is None:
        return False
    return share.median <= 0 or share.low <= 0 <= share.high or share.median < share.high - share.low


def runs_tasks_in_api(summary: Summary, group: RepeatSet) -> bool:
    """Whether the runner's tasks run in the API process: its API CPU then includes running them, so the
    decomposition's target (the cost of handing a job over) does not apply to it."""
    return bool(summary.results.get("runners", {}).get(group.runner, {}).get("runs_in_api"))


def at_common_rate(group: RepeatSet) -> bool:
    """Whether every repeat's decomposition ran at the profile's common rate (older files: assumed)."""
    return all(
        (r.get("extra", {}).get("decomposition") or {}).get("at_common_rate", True) for r in group.records
    )


def knee_found(group: RepeatSet) -> bool:
    """True only if every repeat's search found the knee; otherwise the figure is a lower bound."""
    return all(r.get("extra", {}).get("knee_found") is True for r in group.records)


def slo_ms(group: RepeatSet) -> float | None:
    values = {r.get("extra", {}).get("slo_ms") for r in group.records} - {None}
    return float(min(values)) if values else None


def fractions(summary: Summary) -> list[float]:
    """The steady fractions in this run, ascending."""
    found = {
        float(r["extra"]["fraction"])
        for g in summary.in_scenario("steady")
        for r in g.records
        if isinstance(r.get("extra", {}).get("fraction"), int | float)
    }
    return sorted(found)


def at_fraction(group: RepeatSet, fraction: float) -> RepeatSet | None:
    """The repeats of a steady repeat set run at one fraction of the runner's capacity."""
    records = tuple(r for r in group.records if r.get("extra", {}).get("fraction") == fraction)
    return RepeatSet(group.runner, group.config, group.scenario, group.label, records) if records else None


offered = extra_metric("offered_rate")


def offered_text(group: RepeatSet) -> str:
    """The offered rate: one figure when every repeat offered the same, else min–max (steady offers a
    fraction of each repeat's own capacity, which differs by repeat)."""
    spread = group.spread(offered)
    if spread is None:
        return "n/a"
    if spread.low == spread.high:
        return fmt(spread.low, "/s")
    return f"{fmt(spread.low)}–{fmt(spread.high)}/s"


def kept_up_pct(record: Record) -> float | None:
    """Completed ÷ offered, in %: 100 for a runner that kept up, comparable across repeats."""
    ratio = kept_up(record)
    # One decimal is all it can say (99.97 and 100.02 both kept up), and it keeps "100%" from printing "100.0%".
    return None if ratio is None else round(ratio * 100, 1)


def _load(record: Record) -> Any:
    extra = record.get("extra", {})
    if record["scenario"] == "drain":
        return extra.get("n", record["expected"])
    if record["scenario"] == "steady":
        return extra.get("offered_rate")
    return None


def _brokers(group: RepeatSet) -> set[Any]:
    return {r.get("broker") for r in group.records}


def same_load(a: RepeatSet, b: RepeatSet) -> bool:
    """Whether a and b were measured on the same path at the same offered load, so a ratio means something.

    drain: the same number of pre-filled jobs through the same kind of broker (a runner whose tasks run
    in the API drains a threadpool with no broker: the raw-Redis floor is not its floor); steady: the same
    offered rate; the fixed workloads share their parameters. accept is a search whose steps differ by
    runner: its capacities are ranked, never divided.
    """
    if a.scenario != b.scenario:
        return False
    if a.scenario == "drain" and _brokers(a) != _brokers(b):
        return False
    if a.scenario in FIXED_LOAD_SCENARIOS:
        return True
    loads = [_load(r) for r in (*a.records, *b.records)]
    if any(not isinstance(v, int | float) for v in loads) or not loads:
        return False
    low, high = min(loads), max(loads)
    return bool(high) and (high - low) / high <= SAME_RATE_TOLERANCE
