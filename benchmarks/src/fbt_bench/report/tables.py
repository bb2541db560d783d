"""The report's tables: one per scenario, the versions, the slot budget, "How to choose", the faults."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fbt_bench.measuring.stats import NOISY_CV
from fbt_bench.report.analysis import (
    PARTIAL_MARK,
    RepeatSet,
    Summary,
    display_name,
    email_efficiency,
    enqueue_cost,
    extra_metric,
    kind_shape,
    latency_p50,
    runner_rank,
    system_of,
    throughput,
    worst_slo_rate,
)
from fbt_bench.report.choose import ChoiceRow, how_to_choose
from fbt_bench.report.numbers import (
    NOISY_MARK,
    fmt,
    fmt_cv,
    fmt_pct,
    fmt_range,
    fmt_ratio,
    fmt_spread,
    repeats_text,
    table_id,
)
from fbt_bench.report.wording import P99_MIN_N, rate_unit, tail_cell, tails
from fbt_tasks.registry import UnknownRunner, load_runner
from fbt_tasks.runner import BROKER_TITLES


@dataclass(frozen=True)
class Table:
    id: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------- tables


def _completed(group: RepeatSet) -> str:
    text = f"{group.total('completed'):,}/{group.total('expected'):,}"
    for counter, short in (("failed", "failed"), ("duplicated", "dup")):
        if group.total(counter):
            text += f", {group.total(counter):,} {short}"
    return text + (f" {PARTIAL_MARK}" if group.partial else "")


def _tput(group: RepeatSet) -> str:
    return fmt_spread(group.spread(throughput)) + (f" {PARTIAL_MARK}" if group.partial else "")


def _common(group: RepeatSet) -> tuple[str, ...]:
    tput = group.spread(throughput)
    return (
        group.label,
        _completed(group),
        _tput(group),
        fmt_range(tput),
        fmt_cv(tput),
        fmt_spread(group.spread(latency_p50)),
        tail_cell(r["latency_ms"] for r in group.records),
    )


def common_columns(scenario: str, groups: list[RepeatSet]) -> tuple[str, ...]:
    unit = rate_unit(scenario, (r for g in groups for r in g.records))
    return ("Runner", "Completed/expected", unit, "min–max", "CV", "p50 ms", "tail ms (n)")


Extra = tuple[tuple[str, ...], list[tuple[str, ...]], list[str]]  # columns, rows, notes


def scenario_table(summary: Summary, scenario: str) -> Table:
    """The scenario's runners: medians, spread and scenario-specific figures, noisy/partial cells flagged."""
    rsets = summary.in_scenario(scenario)
    notes = [
        f"Medians of {repeats_text(summary.repeats)}; latency is end to end (enqueue → finished), "
        f"from the ledger. Tail: p99 from {P99_MIN_N} samples per repeat up, else the max; n = the fewest "
        "samples in a repeat."
    ]
    extra = SCENARIO_COLUMNS.get(scenario)
    extra_columns, rows, more = extra(summary, rsets) if extra else ((), [_common(g) for g in rsets], [])
    notes += more
    if any(NOISY_MARK in cell for row in rows for cell in row):
        notes.append(
            f"{NOISY_MARK} noisy: coefficient of variation > {NOISY_CV:.0%} across repeats; read as rough."
        )
    if any(PARTIAL_MARK in cell for row in rows for cell in row):
        notes.append(
            f"{PARTIAL_MARK}: some tasks never completed or completed twice; the figure is from a partial "
            "run."
        )
    return Table(
        table_id(scenario),
        f"{scenario}: runners, medians across repeats",
        common_columns(scenario, rsets) + extra_columns,
        tuple(rows),
        tuple(notes),
    )


def _enqueue_columns(summary: Summary, rsets: list[RepeatSet]) -> Extra:
    rows = []
    for g in rsets:
        rate = worst_slo_rate(g)
        rates_text = "none" if rate is None else fmt(rate)
        rows.append((*_common(g), rates_text, fmt_spread(g.spread(enqueue_cost))))
    note = (
        f"max rate under SLO: worst repeat; SLO = enqueue p99 < {fmt(summary.params['slo_ms'])} ms "
        "with no errors."
    )
    return ("max rate under SLO", "API+broker CPU µs/task"), rows, [note]


def _log_burst_columns(summary: Summary, rsets: list[RepeatSet]) -> Extra:  # noqa: ARG001 (one signature for every builder of its kind)
    rows = [
        (
            *_common(g),
            fmt_spread(g.spread(extra_metric("send_s"))),
            fmt_spread(g.spread(extra_metric("drain_s"))),
        )
        for g in rsets
    ]
    note = (
        "An older scenario: the rate includes sending through the API, so it is not a drain rate; the "
        "floors were fed without HTTP, so no ratio to them is printed."
    )
    return ("send s", "drain s"), rows, [note]


def _email_io_columns(summary: Summary, rsets: list[RepeatSet]) -> Extra:  # noqa: ARG001 (one signature for every builder of its kind)
    rows = [
        (
            *_common(g),
            fmt_pct(g.median(email_efficiency)),
            fmt(g.median(extra_metric("ideal_throughput_per_s"))),
        )
        for g in rsets
    ]
    note = "ideal = slots / SMTP delay: what the slot budget allows if every slot waits on SMTP."
    return ("efficiency vs ideal", "ideal /s"), rows, [note]


def _cpu_heavy_columns(summary: Summary, rsets: list[RepeatSet]) -> Extra:  # noqa: ARG001 (one signature for every builder of its kind)
    rows = []
    for g in rsets:
        idle, loaded = tails(
            *([r["extra"].get(k) for r in g.records] for k in ("probe_idle_ms", "probe_loaded_ms"))
        )
        ratio = loaded.spread.median / idle.spread.median if idle and loaded and idle.spread.median else None
        rows.append(
            (
                *_common(g),
                idle.cell() if idle else "n/a",
                loaded.cell() if loaded else "n/a",
                fmt_ratio(ratio),
            )
        )
    return ("/health idle ms (n)", "/health loaded ms (n)", "loaded/idle"), rows, []


def _mixed_columns(summary: Summary, rsets: list[RepeatSet]) -> Extra:  # noqa: ARG001 (one signature for every builder of its kind)
    kinds = ("write_log", "send_email", "resize_image")
    rows = [(*_common(g), *(tail_cell(kind_shape(r, k) for r in g.records) for k in kinds)) for g in rsets]
    note = "Open loop at a fixed rate: throughput is the offered rate unless the runner falls behind."
    return tuple(f"{k} tail ms (n)" for k in kinds), rows, [note]


SCENARIO_COLUMNS: dict[str, Callable[[Summary, list[RepeatSet]], Extra]] = {
    "enqueue": _enqueue_columns,
    "log-burst": _log_burst_columns,
    "email-io": _email_io_columns,
    "cpu-heavy": _cpu_heavy_columns,
    "mixed": _mixed_columns,
}


def versions_table(results: dict[str, Any]) -> Table:
    env = results["environment"]
    rows = [("Python", env["python"]), ("Redis server", env["redis_server"] or "unknown")]
    rows += [(name, version or "not installed") for name, version in sorted(env["libraries"].items())]
    return Table("tab-versions", "Versions", ("Component", "Version"), tuple(rows))


# What a runner's plugin records beside its describe() (fbt_tasks.runner.runner_record): the report reads
# these facts elsewhere, so the budget row keeps to the configuration in force.
PLUGIN_FACTS = frozenset(
    {
        "display_name",
        "description",
        "broker",
        "runs_in_api",
        "slot_layout",
        "message_locations",
        "exhausted_to",
        "published_drains",
    }
)


def _describe(info: dict[str, Any]) -> str:
    if "display_name" in info and "queue_config" not in info and info.get("description"):
        # A floor (baselines.DESCRIPTIONS): no plugin, no configuration of its own; what it is instead.
        return f"floor, not a runner: {info['description']}"
    if "display_name" in info:  # a runner plugin's record
        info = {
            key: value
            for key, value in info.items()
            if key not in PLUGIN_FACTS and not (key == "queue_config" and isinstance(value, dict))
        }
    return "; ".join(f"{k}: {v}" for k, v in info.items())


status_ratio = extra_metric("status_writes", "drained_ratio")
status_cpu_with = extra_metric("status_writes", "cpu_us_per_task_with")
status_cpu_without = extra_metric("status_writes", "cpu_us_per_task_without")


def status_writes_text(group: RepeatSet) -> str | None:
    """What the queue config's job-status writes (for GET /jobs/{id}) cost, where the library makes none by
    default: its own minimal worker drained with them and without them, in the same repeats."""
    ratio = group.spread(status_ratio)
    if ratio is None:
        return None
    cpu_with, cpu_without = group.median(status_cpu_with), group.median(status_cpu_without)
    cpu = f", CPU {fmt(cpu_without)} → {fmt(cpu_with)} µs per task" if cpu_with and cpu_without else ""
    return (
        f"job-status writes, measured: with them the library's own worker drains {fmt_ratio(ratio.median)} "
        f"({fmt_range(ratio)}) as fast as without{cpu} ({repeats_text(len(group.records))})"
    )


def budget_table(summary: Summary) -> Table:
    p = summary.params
    results = summary.results
    runners = sorted(results["runners"].items(), key=lambda item: runner_rank(results, item[0]))
    drains = {g.runner: g for g in summary.in_scenario("drain")}
    rows = []
    for name, info in runners:
        described = _describe(info)
        cost = status_writes_text(drains[name]) if name in drains else None
        rows.append(
            (
                name_label(results, name),
                str(info.get("slot_layout") or info.get("layout") or "not recorded"),
                f"{cost}; {described}" if cost else described,
            )
        )
    return Table(
        "tab-budget",
        f"Equal slot budget: {p['slots']} task slots (WORKER_PROCESSES {p['worker_processes']} × WORKER_THREADS "
        f"{p['worker_threads']}). How each runner really spends them, and its configuration in this run:",
        ("Runner", "Real layout", "Configuration in force"),
        tuple(rows),
    )


def name_label(results: dict[str, Any], runner: str, *, library: bool = False) -> str:
    """The display name, with the runner's own name when they differ ("BackgroundTasks (inprocess)").

    ``library``: the library's own name even where the run named a system by its broker ("Celery", not
    "Celery on Redis"), for a table whose broker column says which.
    """
    name = display_name(results, runner)
    if library:
        try:
            name = load_runner(runner).display_name
        except UnknownRunner:
            pass
    return name if name.lower() == runner else f"{name} ({runner})"


def choose_table(summary: Summary, labels: dict[str, str]) -> Table:
    rows: list[ChoiceRow] = how_to_choose(summary)
    columns = ("Need", *(summary.system_label(*s) for s in summary.systems), "Measured best", "Source")
    return Table(
        "tab-choose",
        "How to choose (every cell is a figure from this run)",
        columns,
        tuple(
            (row.need, *row.cells, row.verdict, ", ".join(labels[r] for r in row.refs if r in labels) or "—")
            for row in rows
        ),
        (
            f"{NOISY_MARK} noisy (CV > {NOISY_CV:.0%}); {PARTIAL_MARK}: from a run with missing or "
            "duplicated tasks.",
        ),
    )


FAULT_COUNTS = ("lost", "held", "failed", "reexecuted", "duplicate_effects", "skipped_redeliveries")


def fault_groups(faults: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The trials of each cell (runner on its broker, config, fault, fsync policy) together, first-seen order."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for f in faults:
        key = (system_of(f), f["config"], f["fault"], f.get("appendfsync", "") or f.get("variant", ""))
        groups.setdefault(key, []).append(f)
    return list(groups.values())


def side_by_side(groups: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    """The same groups with each library's brokers next to each other: per runner, config and fault, the rows
    of every broker it ran on follow one another (in first-seen order, so the default broker comes first)."""
    first: dict[tuple[str, Any], int] = {}
    for group in groups:
        f = group[0]
        for key in (("runner", f["runner"]), ("config", f["config"]), ("fault", f["fault"])):
            first.setdefault(key, len(first))
    return sorted(
        groups,
        key=lambda g: (
            first[("runner", g[0]["runner"])],
            first[("config", g[0]["config"])],
            first[("fault", g[0]["fault"])],
        ),
    )


def broker_title(f: dict[str, Any]) -> str:
    """The broker a fault record ran on, as the report names it (an older record: the runner's default)."""
    broker = f.get("broker")
    if broker is None:
        try:
            broker = load_runner(f["runner"]).brokers[0]
        except UnknownRunner:
            return "its default"
    return BROKER_TITLES.get(broker, broker)


def span(values: list[Any]) -> str:
    """min–max over trials ("3" when they agree); "never" for a missing recovery."""
    known = [v for v in values if v is not None]
    if not known:
        return "never"
    low, high = min(known), max(known)
    text = fmt(low) if low == high else f"{fmt(low)}–{fmt(high)}"
    return text + (" (never in some)" if len(known) < len(values) else "")


def fault_label(f: dict[str, Any]) -> str:
    if f.get("appendfsync"):
        return f"{f['fault']} (appendfsync {f['appendfsync']})"
    return str(f["fault"]) + (f" ({f['variant']})" if f.get("variant") else "")


def faults_table(results: dict[str, Any]) -> Table | None:
    faults = results["faults"]
    if not faults:
        return None
    rows = tuple(
        (
            name_label(results, group[0]["runner"], library=True),
            broker_title(group[0]),
            group[0]["config"],
            fault_label(group[0]),
            str(len(group)),
            span([f["expected"] for f in group]),
            *(span([f.get(count, 0) for f in group]) for count in FAULT_COUNTS),
            span([f["recovery_s"] for f in group]),
            group[0]["notes"],
        )
        for group in side_by_side(fault_groups(faults))
    )
    return Table(
        "faults",
        "When things break (min–max over trials; a library's brokers side by side)",
        (
            "Runner",
            "Broker",
            "Config",
            "Fault",
            "Trials",
            "Expected",
            "Lost",
            "Held",
            "Failed",
            "Re-executed",
            "Duplicate effects",
            "Skipped redeliveries",
            "Recovery s",
            "Notes (trial 1)",
        ),
        rows,
    )


def faults_layout(results: dict[str, Any]) -> str | None:
    """How the fault cells ran, against the benchmark's layout, and what running several at once changes."""
    params = results["parameters"].get("faults")
    if not results["faults"] or not isinstance(params, dict) or "worker_processes" not in params:
        return None
    processes, threads = params["worker_processes"], params["worker_threads"]
    slots = processes * threads
    lanes, cores = params.get("parallel", 1), results.get("environment", {}).get("cpu_count") or "?"
    trials = params.get("trials", 1)
    reused = sum(1 for record in results["faults"] if record.get("stack") == "reused")
    stacks = (
        f"{len(results['faults']) - reused} trials started a stack and {reused} ran on the stack an earlier "
        "trial of the same cell had left clean (none of its jobs in the broker, "
        "every process running; counts are by job id either way),"
        if reused
        else "Each trial ran on a fresh stack"
    )
    return (
        f"{stacks} with the benchmark's slot layout ({processes} processes x {threads} "
        f"threads = {slots} slots; BackgroundTasks: a threadpool of {params.get('api_threadpool') or slots} "
        f"tokens), {trials} trial{'' if trials == 1 else 's'} per cell, {lanes} stacks at a time on {cores} "
        "cores, unlike the benchmark's one "
        "measurement at a time: the stacks share the CPU, so recovery times are approximate; the counts (lost, "
        "held, failed, re-executed, duplicated) are read from the sink, the ledger and the broker and do not "
        "depend on it."
    )


def mechanisms(results: dict[str, Any]) -> list[tuple[str, str]]:
    """One sentence per runner: its distinct mechanisms, each tagged with the fault and config it explains."""
    out = []
    runners = dict.fromkeys(system_of(f) for f in results["faults"])
    for runner in runners:
        parts: dict[str, list[str]] = {}
        for group in fault_groups(results["faults"]):
            f = group[0]  # one sentence per fault: the first trial's (the others differ only in counts)
            if system_of(f) == runner and f["mechanism"]:
                parts.setdefault(f["mechanism"].rstrip("."), []).append(f"{fault_label(f)}, {f['config']}")
        text = "; ".join(f"{why} ({'; '.join(where)})" for why, where in parts.items())
        out.append((name_label(results, runner), text + "." if text else "no mechanism recorded."))
    return out
