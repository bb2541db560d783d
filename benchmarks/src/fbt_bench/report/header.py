"""The report's header: what was run, on what, with which seed and load generator, how the time was spent,
why the budget is equal in task slots (and what that leaves unequal), and how to read the rest."""

from fbt_bench.measuring.stats import NOISY_CV, Spread
from fbt_bench.profiles import SCENARIOS
from fbt_bench.report.analysis import PARTIAL_MARK, Summary, email_efficiency, memory_measure, throughput
from fbt_bench.report.capacity import loadgen_cpu, loadgen_share, loadgen_share_budget, wakeup_cost
from fbt_bench.report.capacity_findings import LOADGEN_TARGET_US
from fbt_bench.report.numbers import (
    NOISY_MARK,
    figure_id,
    fmt,
    fmt_pct,
    fmt_ratio,
    fmt_spread,
    possessive,
    repeats_text,
)
from fbt_bench.report.tables import Table
from fbt_bench.report.wording import P99_MIN_N, P999_MIN_N, tails
from fbt_bench.scenarios.baselines import DISPLAY_NAMES as FLOOR_NAMES
from fbt_tasks.settings import ANYIO_DEFAULT_THREADPOOL

TOPOLOGY_NOTES = {
    "local": "the harness started Redis, the SMTP sink, the API and the workers on this machine",
    "external": "the harness drove an already running stack; resources it could not see are not measured",
}
NOT_RECORDED = "not recorded in this run"


def header_rows(summary: Summary) -> list[tuple[str, str]]:
    r, env, p = summary.results, summary.results["environment"], summary.params
    systems = ", ".join(summary.system_label(*s) for s in summary.systems)
    baselines = sorted({g.label for g in summary.repeat_sets.values() if g.baseline})
    seed = p.get("seed")
    faults = r["faults"]
    kinds, pairs = len({f["fault"] for f in faults}), len({(f["runner"], f.get("broker")) for f in faults})
    what = (
        f"{kinds} fault{'s' if kinds != 1 else ''} × {pairs} runner-broker pairs; {len(faults)} trials"
        if faults and not r["records"]
        else None
    )
    return [
        (
            "What",
            what
            or f"{len(summary.scenarios())} scenarios ({', '.join(summary.scenarios())}) × runners {systems}"
            + (f", floors {', '.join(baselines)}" if baselines else "")
            + f"; {repeats_text(summary.repeats)}, {len(r['records'])} records",
        ),
        ("When (UTC)", r["created_at"]),
        (
            "Machine",
            f"{env['cpu_model']}, {env['cpu_count']} cores, {fmt(env['memory_gb'])} GB RAM; {env['platform']}",
        ),
        ("Python / Redis server", f"{env['python']} / {env['redis_server'] or 'unknown'}"),
        ("API server", server_text(env.get("libraries") or {})),
        ("Profile", profile_text(r["profile"], p)),
        ("Left out", left_out_text(summary)),
        ("Topology", f"{r['topology']}: {TOPOLOGY_NOTES.get(r['topology'], '')}"),
        (
            "Order and seed",
            "runner and scenario order shuffled per repeat, floors interleaved, seed "
            + (str(seed) if seed is not None else NOT_RECORDED),
        ),
        ("Load generator", loadgen_text(summary)),
        ("Complete", "yes" if r["complete"] else "NO: see the banner above"),
    ]


def server_text(libraries: dict[str, str]) -> str:
    """How the API (and the floors' copies of it) was served: uvicorn, and its production extras if recorded."""
    uvicorn = libraries.get("uvicorn", "unknown")
    httptools, uvloop = libraries.get("httptools"), libraries.get("uvloop")
    if httptools and uvloop and "not installed" not in (httptools, uvloop):
        return (
            f"uvicorn {uvicorn} with httptools {httptools} and uvloop {uvloop} (uvicorn[standard], as its docs "
            "recommend for production), one worker process, access log off; the floors' apps are served alike"
        )
    return f"uvicorn {uvicorn}, one worker process (server extras not recorded in this run)"


PROFILE_NOTES = {
    "quick": "a smoke run: one repeat, short accept steps and windows, small drains and bursts (fewer samples: "
    "read its figures as a check that everything runs, not as results)",
    "default": "every runner on every broker this machine has, the samples the percentiles need",
    "full": "long windows, 20,000-job drains, five repeats",
    "network": "the broker on another host: drain and steady at each RTT to the broker, every runner on Redis",
    "scaling": "the slot sweep: drain and email-io at each slot count, every runner on its default broker, one "
    "repeat (the scenario sections show the run's own slot budget; Scaling with slots shows every count)",
}


def profile_text(name: str, params: dict[str, object]) -> str:
    note = PROFILE_NOTES.get(name)
    brokers = params.get("brokers")
    on = f"; brokers: {', '.join(map(str, brokers))}" if isinstance(brokers, list) else ""
    return f"{name}: {note}{on}" if note else f"{name}{on}"


def left_out_text(summary: Summary) -> str:
    """What this run did not measure (scenarios its profile leaves to full) and what it measured only once."""
    measured = set(summary.scenarios())
    skipped = [name for name in SCENARIOS if name not in measured]
    once = [str(name) for name in summary.params.get("once") or [] if name in measured]
    parts = [f"{', '.join(skipped)} not run (the full profile runs every scenario)"] if skipped else []
    if once:
        parts.append(f"{', '.join(once)} measured once, in the first repeat, on each runner's default broker")
    if "accept" in measured and (first := summary.params.get("decomposition_repeats")):
        which = "repeat" if int(first) == 1 else f"{int(first)} repeats"
        parts.append(f"accept's API cost decomposition in the first {which} only")
    return "; ".join(parts) or "nothing: every scenario, every repeat"


def loadgen_text(summary: Summary) -> str:
    """Where the load generator ran and what each request cost it, against its budget."""
    spread = Spread.of(loadgen_cpu(r) for g in summary.repeat_sets.values() for r in g.records)
    place = placement_text(summary.params.get("placement"))
    if spread is None:
        return f"{place}; its CPU per request was not measured in this run"
    text = (
        f"{place}; CPU per request over {spread.n:,} records: median {fmt(spread.median, ' µs')}, "
        f"max {fmt(spread.high, ' µs')} (budget {fmt(LOADGEN_TARGET_US, ' µs')})"
    )
    shares = Spread.of(loadgen_share(r) for g in summary.repeat_sets.values() for r in g.records)
    if shares is not None:
        budget = loadgen_share_budget(summary.params)
        text += f"; share of a core: max {fmt_pct(shares.high)} (budget {fmt_pct(budget)})"
    wakeup = wakeup_cost(summary.results)
    if wakeup is not None:
        text += f"; one wake-up of an idle process costs {fmt(wakeup[0], ' µs')} here (n {wakeup[1]})"
    return text


def placement_text(placement: object) -> str:
    """``parameters.placement`` as the harness writes it: {pinned, reason, ...}."""
    if not isinstance(placement, dict) or "pinned" not in placement:
        return f"placement {NOT_RECORDED}"
    how = "pinned" if placement["pinned"] else "shared"
    return f"placement: {how}: {placement.get('reason', 'no reason recorded')}"


def budget_paragraph(summary: Summary) -> str:
    slots = summary.params["slots"]
    return (
        f"Why the budget is equal in task slots: every runner gets {slots} concurrent task executions, and "
        "spends them in its own model, as its documentation recommends: prefork processes, threads, forking "
        "workers, or the API's threadpool (the real layout of each is in the table). Equal slots give every "
        "runner the same number of tasks in flight, so a blocking task (an SMTP wait) is limited the same "
        "way everywhere. They do not equalise memory (a process per slot costs more than a thread per "
        f"slot: see the {memory_measure(summary)} figure), nor CPU per slot (threads of one process share "
        "one interpreter lock, processes do not; every runner shares the same cores with the API, the "
        "broker and the load generator)."
    )


def time_spent_table(summary: Summary) -> Table | None:
    """``parameters.time_spent_s`` ({total, phases: [{runner, repeat, scenario, seconds}]}) by scenario."""
    spent = summary.params.get("time_spent_s")
    if not isinstance(spent, dict) or not isinstance(spent.get("phases"), list):
        return None
    by_scenario: dict[str, float] = {}
    for phase in spent["phases"]:
        by_scenario[phase["scenario"]] = by_scenario.get(phase["scenario"], 0.0) + float(phase["seconds"])
    measured = sum(by_scenario.values())
    total = max(float(spent.get("total") or 0.0), measured)
    if total - measured >= 0.5:  # between phases: shuffles, the environment, writing results
        by_scenario["other"] = total - measured
    if not by_scenario:
        return None

    def share(seconds: float) -> str:
        return f"{seconds / total:.0%}" if total else "n/a"

    rows = [(name, fmt(seconds, " s"), share(seconds)) for name, seconds in by_scenario.items()]
    rows.append(("total", fmt(total, " s"), "100%"))
    per_unit = _per_unit(spent["phases"])
    if per_unit:
        # What the total scales with: each added runner, broker or floor adds about this much per repeat.
        median, high, n = per_unit
        rows.append(
            (
                "per runner (or floor) and repeat",
                f"median {fmt(median, ' s')}, max {fmt(high, ' s')} (n {n})",
                "",
            )
        )
    return Table("tab-time", "How the run's time was spent", ("Phase", "Wall time", "Share"), tuple(rows))


def _per_unit(phases: list[dict[str, object]]) -> tuple[float, float, int] | None:
    """Wall time of each (runner or floor, repeat), stack start included: median, max and how many."""
    units: dict[tuple[str, str], float] = {}
    for phase in phases:
        if phase.get("repeat") is None:  # the fault pass: once per run, not per runner and repeat
            continue
        key = (str(phase.get("runner")), str(phase.get("repeat")))
        units[key] = units.get(key, 0.0) + float(str(phase["seconds"]))
    if not units:
        return None
    times = sorted(units.values())
    return times[len(times) // 2], times[-1], len(times)


def threadpool_title(summary: Summary) -> str:
    in_api = summary.threadpool_systems()
    return (
        f"{possessive(summary.display_name(in_api[0][0]))} threadpool" if in_api else "The API's threadpool"
    )


def threadpool_text(summary: Summary, labels: dict[str, str]) -> str:
    """Where tasks that run in the API process run: its threadpool, its size against the slot budget."""
    in_api = summary.threadpool_systems()
    if not in_api:
        return "No runner that runs its tasks on the API's threadpool was part of this run."
    runner, config = in_api[0]
    name = summary.display_name(runner)
    tokens, slots = summary.threadpool_tokens(), summary.params["slots"]
    default = summary.params.get("anyio_default_threadpool", ANYIO_DEFAULT_THREADPOOL)
    if tokens is None:
        pool = "a threadpool whose size was not recorded"
    elif tokens == default:
        pool = f"anyio's threadpool of {tokens} tokens (anyio's default)"
    else:
        pool = f"anyio's threadpool set to {tokens} tokens (API_THREADPOOL; anyio's default is {default})"
    if tokens == slots:
        budget = (
            f"sized to the same {slots}-slot budget as the broker runners. Out of the box it would be "
            f"{default} tokens: up to {default} tasks at once, competing with requests for the API's CPU."
        )
    else:
        budget = f"outside the {slots}-slot budget the broker runners get."
    text = (
        f"Starlette runs sync {name} inside the API process on {pool}, the same pool that serves "
        f"the API's sync endpoints; {budget}"
    )
    effects = _threadpool_effects(summary, runner, config, labels)
    return text + (" Effect in this run: " + "; ".join(effects) + "." if effects else "")


def _threadpool_effects(summary: Summary, runner: str, config: str, labels: dict[str, str]) -> list[str]:
    slots, effects = summary.params["slots"], []
    email = summary.get("email-io", runner, config)
    if email and (eff := email.spread(email_efficiency)):
        effects.append(
            f"email-io reached {fmt_spread(email.spread(throughput), ' completed/s')}"
            + (f" {PARTIAL_MARK}" if email.partial else "")
            + f" = {fmt_ratio(eff.median)} the "
            f"{slots}-slot ideal ({labels.get(figure_id('throughput', 'email-io'), 'email-io')})"
        )
    cpu = summary.get("cpu-heavy", runner, config)
    if cpu:
        idle, loaded = tails(
            *([r["extra"].get(k) for r in cpu.records] for k in ("probe_idle_ms", "probe_loaded_ms"))
        )
        if idle and loaded:
            effects.append(
                f"under cpu-heavy its /health went from {idle.text()} to {loaded.text()} "
                f"({labels.get(figure_id('probe', 'cpu-heavy'), 'cpu-heavy')})"
            )
    return effects


def how_to_read(summary: Summary) -> list[str]:
    slots, noisy = summary.params["slots"], f"{NOISY_CV:.0%}"
    in_api = dict.fromkeys(runner for runner, _ in summary.in_api_systems())
    return [
        "Three capacities are measured apart: accept (the highest open-loop rate at which POST /log/ keeps "
        "p99 under the SLO, workers running; in accepted/s), drain (a pre-filled queue emptied by the "
        "workers, no HTTP; in drained/s) and steady (open-loop arrivals at fixed fractions of each "
        "runner's own capacity; end-to-end latency). Every other rate is completed/s.",
        "Latency percentiles come from HdrHistogram and carry their sample count (n). Below "
        f"{P99_MIN_N} samples the report prints the max, not a p99; below {P999_MIN_N:,}, no p99.9. End-to-end "
        "latency is enqueued_at → finished_at of each task, read from the ledger the tasks write themselves.",
        "Request latency is open loop: requests leave on a fixed schedule and are timed from their intended "
        "send time, so a stalled API cannot hide its queueing delay; a request that could not leave on time "
        "is counted as late.",
        "Completion is counted from the ledger, not from the queue: completed = distinct job ids with a "
        "successful run, duplicated = ids that succeeded more than once.",
        f"Each figure is the median of {repeats_text(summary.repeats)}, with its min–max range and "
        f"coefficient of variation (sample standard deviation / mean); {NOISY_MARK} marks CV > {noisy}.",
        'Two runners are ranked ("ahead") only if their min–max ranges across repeats do not overlap (with a '
        f"single repeat: only if they differ by more than {noisy}), and the sentence says how many repeats it "
        'rests on; otherwise they are "indistinguishable within noise". A ranking runs in tiers: the best '
        'figure and every figure whose range overlaps it are "tied", the next tier starts past the gap.',
        "A ratio to a floor is printed only where both were measured on the same path at the same offered "
        "load (drain at the same N); accept capacities are ranked, never divided.",
        f"Every broker runner gets the same {slots} task slots; "
        + "".join(f"{summary.display_name(r)} run on the API's threadpool (see the header). " for r in in_api)
        + f"{' and '.join(FLOOR_NAMES.values())} are floors, not contenders.",
        f"{PARTIAL_MARK} marks any figure from a run where tasks went missing, failed or ran twice.",
    ]
