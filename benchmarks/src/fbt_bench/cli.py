"""``fbt-bench``: run the side-by-side comparison and write results.json plus the reports."""

import json
import secrets
import shlex
import signal
import sys
from collections import defaultdict
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from fbt_bench import topology
from fbt_bench.faults.model import CONFIGS, FAULTS, FULL, LINK_FAULTS, matrix, skipped_faults
from fbt_bench.faults.run import Interrupted, run_faults
from fbt_bench.harness import Plan, RunOutcome, publish, run
from fbt_bench.measuring import stats
from fbt_bench.profiles import PROFILES, SCENARIOS
from fbt_bench.progress import RichProgress
from fbt_bench.report.tables import FAULT_COUNTS, fault_groups, fault_label, side_by_side, span
from fbt_bench.results import standalone_document, write_results
from fbt_bench.scenarios.baselines import BASELINES
from fbt_devstack import netns
from fbt_tasks.registry import installed_runners, load_runner, system_key
from fbt_tasks.runner import QUEUE_CONFIG_NAMES

# Every broker any installed runner can use (the runners' own ``brokers``), "none" aside.
BROKERS = tuple(sorted({b for r in installed_runners() for b in load_runner(r).brokers} - {"none"}))

# Every installed runner plugin (the fbt.backends entry points); nothing here names one.
RUNNERS = installed_runners()

EXIT_INCOMPLETE = 1
EXIT_INTERRUPTED = 130

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    # Docstrings are wrapped at 110 columns in the source: markdown mode reflows each paragraph to the terminal.
    rich_markup_mode="markdown",
    help="Benchmark FastAPI BackgroundTasks against every installed task queue on one identical API.",
)


# A name from a fixed set (runner, scenario, queue config, fault), kept as its own type through parse_list.
Name = TypeVar("Name", bound=str)


def parse_list(value: str | None, allowed: tuple[Name, ...], what: str) -> tuple[Name, ...] | None:
    """A comma-separated CLI list, checked against ``allowed``; 'none' means an empty list."""
    if value is None:
        return None
    if value.strip().lower() == "none":
        return ()
    items = tuple(item.strip() for item in value.split(",") if item.strip())
    unknown = [item for item in items if item not in allowed]
    if unknown:
        raise typer.BadParameter(f"unknown {what}: {', '.join(unknown)} (choose from {', '.join(allowed)})")
    return tuple(next(name for name in allowed if name == item) for item in items)  # as the allowed names


@app.callback()
def root() -> None:
    """Run `fbt-bench compare --help` for the options; `make compare PROFILE=quick` is the short way."""


# The signature is Typer's option list (one parameter per CLI option), hence its length.
@app.command()
def compare(
    profile: Annotated[
        str,
        typer.Option(
            help=f"Parameter set: {', '.join(PROFILES)}. Optional ones: network (drain and steady at 0, 1 and "
            "5 ms RTT to the broker, needs root), scaling (drain and email-io at 1 to 32 slots per runner, "
            "throughput against the ideal and peak PSS per slot)."
        ),
    ] = "default",
    runners: Annotated[
        str | None, typer.Option(help=f"Comma-separated subset of {','.join(RUNNERS)} (default: all).")
    ] = None,
    brokers: Annotated[
        str | None,
        typer.Option(help=f"Comma-separated subset of {','.join(BROKERS)} (default: all this machine has)."),
    ] = None,
    scenarios: Annotated[
        str | None, typer.Option(help=f"Comma-separated subset of {','.join(SCENARIOS)} (default: all).")
    ] = None,
    baselines: Annotated[
        str | None, typer.Option(help=f"Comma-separated subset of {','.join(BASELINES)}, or 'none'.")
    ] = None,
    repeats: Annotated[
        int | None, typer.Option(min=1, help="Repeats of the whole matrix (overrides profile).")
    ] = None,
    n: Annotated[
        int | None, typer.Option(min=1, help="drain size (overrides the profile's drain_n, e.g. 20000).")
    ] = None,
    email_n: Annotated[int | None, typer.Option(min=1, help="email-io size.")] = None,
    cpu_n: Annotated[int | None, typer.Option(min=1, help="cpu-heavy: number of resizes.")] = None,
    ceiling: Annotated[
        float | None, typer.Option(min=1, help="accept: the highest rate the search may offer.")
    ] = None,
    mixed_rate: Annotated[int | None, typer.Option(min=1, help="mixed: arrivals per second.")] = None,
    mixed_duration: Annotated[float | None, typer.Option(min=0.1, help="mixed: seconds of load.")] = None,
    smtp_delay_ms: Annotated[
        int | None, typer.Option(min=1, help="SMTP sink delay per message (ms).")
    ] = None,
    config: Annotated[
        str, typer.Option(help="QUEUE_CONFIG for the broker runners: safe or defaults.")
    ] = "safe",
    out: Annotated[Path, typer.Option(help="Results root; each run writes `<out>/<UTC time>/`.")] = Path(
        "results"
    ),
    seed: Annotated[
        int | None,
        typer.Option(
            help="Seeds the runner/scenario shuffles and the arrivals (default: a fresh one, recorded)."
        ),
    ] = None,
    fault_pass: Annotated[
        bool | None,
        typer.Option(
            "--faults/--no-faults",
            help=(
                "Finish with a short fault pass: kill-worker in both queue configurations, deploy in the safe "
                "one (default: on, off for quick)."
            ),
        ),
    ] = None,
) -> None:
    """Run every runner through every scenario (plus the raw-redis and direct-call floors).

    Local mode starts Redis, the SMTP sink, the API and the workers itself and stops them afterwards. Set
    `API_URL_<RUNNER>` for the runners to measure (with REDIS_URL, LEDGER_FILE and API_KEY of that
    deployment) to measure an existing deployment instead. Ctrl-C stops everything and
    still writes what was measured, marked partial.
    """
    if profile not in PROFILES:
        raise typer.BadParameter(f"unknown profile {profile!r} (choose from {', '.join(PROFILES)})")
    if config not in QUEUE_CONFIG_NAMES:
        raise typer.BadParameter(f"config is one of {', '.join(QUEUE_CONFIG_NAMES)}")
    chosen = PROFILES[profile].with_overrides(
        repeats=repeats,
        drain_n=n,
        email_n=email_n,
        cpu_n=cpu_n,
        accept_ceiling_rate=ceiling,
        mixed_rate=mixed_rate,
        mixed_duration_s=mixed_duration,
        smtp_delay_ms=smtp_delay_ms,
    )
    if chosen.rtts_ms and (reason := netns.unavailable_reason()) is not None:
        typer.echo(f"--profile {profile}: {reason}", err=True)
        raise typer.Exit(2)
    if chosen.rtts_ms:
        netns.cleanup()  # namespaces and links of runs that died (a live run's, another engineer's, stay)
    # The floors and RabbitMQ's private node run on one loopback: the hosts topology measures runners on Redis.
    hosts_only = ("redis",) if chosen.rtts_ms else None
    plan = Plan(
        profile=chosen,
        runners=parse_list(runners, RUNNERS, "runners") or RUNNERS,
        scenarios=parse_list(scenarios, SCENARIOS, "scenarios") or chosen.scenarios or SCENARIOS,
        baselines=(
            (BASELINES if chosen.floors_apply else ())
            if baselines is None
            else parse_list(baselines, BASELINES, "baselines") or ()
        ),
        config=config,
        seed=seed if seed is not None else secrets.randbelow(2**31),
        out_root=out,
        command=shlex.join(["fbt-bench", *sys.argv[1:]]),
        fault_pass=chosen.fault_pass if fault_pass is None else fault_pass,
        brokers=hosts_only
        or (parse_list(brokers, BROKERS, "brokers") if brokers is not None else chosen.default_brokers),
    )
    console = Console(stderr=True)
    signal.signal(signal.SIGTERM, _interrupt)
    with RichProgress(console) as progress:
        outcome = run(plan, progress)
    _publish_and_exit(console, outcome, summary_table(outcome.document), say_incomplete=True)


# The signature is Typer's option list (one parameter per CLI option), hence its length.
@app.command()
def faults(
    runners: Annotated[
        str | None, typer.Option(help=f"Comma-separated subset of {','.join(RUNNERS)} (default: all).")
    ] = None,
    configs: Annotated[
        str | None, typer.Option(help="Comma-separated QUEUE_CONFIGs for the broker runners (default: both).")
    ] = None,
    kinds: Annotated[
        str | None,
        typer.Option("--faults", help=f"Comma-separated subset of {','.join(FAULTS)}."),
    ] = None,
    brokers: Annotated[
        str | None,
        typer.Option(help=f"Comma-separated subset of {','.join(BROKERS)} (default: all this machine has)."),
    ] = None,
    n: Annotated[int | None, typer.Option(min=2, help="Emails per burst (default 60).")] = None,
    parallel: Annotated[
        int | None, typer.Option(min=1, help="Stacks run at once; most of a trial is waiting (default 8).")
    ] = None,
    trials: Annotated[int | None, typer.Option(min=1, help="Runs of each cell (default 3).")] = None,
    seed: Annotated[
        int | None, typer.Option(help="Base seed of the fault moments (default: drawn now; recorded).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Results root; each run writes `<out>/<UTC time>/`.")] = Path(
        "results/faults"
    ),
) -> None:
    """Break things on purpose: every runner on each broker, both queue configurations, eleven faults.

    kill-worker (SIGKILL the worker tree mid-burst), deploy (SIGTERM mid-burst), api-deploy (the API
    replaced under load), broker-restart (the broker
    stopped a few seconds), task-error (the SMTP sink refuses each email twice), broker-crash (SIGKILL Redis,
    per AOF fsync policy, or the RabbitMQ node), broker-full (the broker at its memory limit for 15 s),
    partition (the workers, or the API, cut off from the broker's host), slow-link (a lossy, jittery broker
    link during a drain; both need root), delay-past-timeout and poison-message; three trials per cell,
    a cell's trials sharing a stack while each leaves it clean. Lost, held, re-executed and
    duplicated emails are counted at the SMTP sink by Message-ID and in the broker; results.json holds them
    under "faults". Each finished trial prints the trials done out of the total and an estimate of the time
    left.
    """
    chosen = parse_list(kinds, FAULTS, "faults") or FAULTS
    params = FULL.with_overrides(
        n=n, parallel=parallel, trials=trials, seed=secrets.randbelow(2**31) if seed is None else seed
    )
    wanted = parse_list(brokers, BROKERS, "brokers")
    console = Console(stderr=True)
    # A broker this machine cannot provide is skipped, with the one-line reason on the terminal.
    available = tuple(
        b
        for b in (wanted or BROKERS)
        if b not in topology.BROKER_AVAILABILITY or not topology.BROKER_AVAILABILITY[b]()
    )
    skipped = [
        f"{broker} not measured: {topology.BROKER_AVAILABILITY[broker]()}"
        for broker in sorted(set(wanted or BROKERS) - set(available))
    ]
    chosen_runners = parse_list(runners, RUNNERS, "runners") or RUNNERS
    cells = matrix(
        chosen_runners,
        parse_list(configs, CONFIGS, "configs") or CONFIGS,
        chosen,
        trials=params.trials,
        brokers=available,
    )
    skipped += skipped_faults(chosen_runners, chosen, available)
    if set(LINK_FAULTS) & set(chosen) and (no_hosts := netns.unavailable_reason()) is not None:
        cells = [cell for cell in cells if cell.fault not in LINK_FAULTS]
        skipped.append(f"{', '.join(sorted(set(LINK_FAULTS) & set(chosen)))} not run: {no_hosts}")
    for line in skipped:
        console.print(f"[yellow]skipped:[/] {line}")
    signal.signal(signal.SIGTERM, _interrupt)
    interrupted, records = False, []
    try:
        with RichProgress(console) as progress:
            records = run_faults(cells, params, progress=progress)
    except Interrupted as stopped:
        interrupted, records = True, stopped.records
    except KeyboardInterrupt:
        interrupted = True
    document = standalone_document(records, params, shlex.join(["fbt-bench", *sys.argv[1:]]))
    document["warnings"].extend(skipped)  # what was left out, and why, stays with the results
    path = write_results(document, out)
    outcome = RunOutcome(document=document, results_path=path, interrupted=interrupted)
    _publish_and_exit(console, outcome, fault_table(document), say_incomplete=False)


def _publish_and_exit(console: Console, outcome: RunOutcome, table: Table, *, say_incomplete: bool) -> None:
    """Validate and render the reports, print the summary, warnings and paths; exit non-zero if not clean."""
    reports, problems = publish(outcome)
    console.print(table)
    for warning in outcome.document["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}")
    for problem in problems:
        console.print(f"[red]problem:[/] {problem}")
    console.print(f"results: {outcome.results_path}")
    for path in reports:
        console.print(f"report:  {path}")
    if outcome.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if not outcome.document["complete"] or problems:
        if say_incomplete:
            console.print("[bold red]INCOMPLETE RUN[/]: see the warnings above; the report says the same.")
        raise typer.Exit(EXIT_INCOMPLETE)


@app.command()
def profiles() -> None:
    """Print the parameters of every profile as JSON."""
    typer.echo(json.dumps({name: p.parameters() for name, p in PROFILES.items()}, indent=2))


def summary_table(document: dict[str, Any]) -> Table:
    """Median over repeats per runner and scenario: throughput, e2e p50/p99, and what completed."""
    table = Table(title=f"fbt-bench {document['profile']} ({document['created_at']})")
    for column in ("scenario", "runner", "tasks/s", "e2e p50 ms", "e2e p99 ms", "completed", "notes"):
        table.add_column(column, justify="left" if column in ("scenario", "runner", "notes") else "right")
    # A slot sweep's points are conditions, not repeats: each its own row, in slot order.
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for record in document["records"]:
        key = system_key(record["runner"], record.get("broker"))
        if record["scenario"] == "cpu-sweep":  # one record per placement: each its own row
            key += f" ({record['extra'].get('placement')})"
        groups[(record["scenario"], key, int(record.get("slots", 0)))].append(record)
    order = {name: i for i, name in enumerate(SCENARIOS)}
    for (scenario, runner, slots), records in sorted(
        groups.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1], kv[0][2])
    ):
        runner += f" @{slots} slots" if slots else ""
        throughput = stats.spread([r["throughput_per_s"] for r in records])
        notes = []
        if throughput["noisy"]:
            notes.append(f"noisy (CV {throughput['cv']:.0%})")
        if scenario == "enqueue":
            best = [r["extra"].get("max_rate_under_slo") for r in records]
            notes.append(f"max rate under SLO {stats.spread([b or 0 for b in best])['median']:g}/s")
        if scenario == "cpu-sweep":
            found = [r["extra"].get("threshold_per_s") for r in records]
            notes.append(
                "threshold " + ", ".join("none found" if t is None else f"{t:g} resizes/s" for t in found)
            )
        if scenario == "cpu-heavy":
            ratios = [r["extra"].get("interference_ratio") or 0 for r in records]
            notes.append(f"/health p99 x{stats.spread(ratios)['median']:.1f} under load")
        completed = sum(r["completed"] for r in records)
        expected = sum(r["expected"] for r in records)
        mark = "" if completed == expected and not any(r["duplicated"] for r in records) else "[red]"
        table.add_row(
            scenario,
            runner,
            f"{throughput['median']:.1f}",
            f"{stats.spread([r['latency_ms']['p50'] for r in records])['median']:.1f}",
            f"{stats.spread([r['latency_ms']['p99'] for r in records])['median']:.1f}",
            f"{mark}{completed}/{expected}",
            "; ".join(notes),
        )
    return table


def fault_table(document: dict[str, Any]) -> Table:
    """One row per runner x config x fault (x fsync policy): min–max over trials of every outcome."""
    table = Table(title=f"When things break ({document['created_at']}; min–max over trials)")
    columns = (
        "runner",
        "config",
        "fault",
        "trials",
        "lost",
        "held",
        "failed",
        "re-run",
        "dup.",
        "skipped",
        "recovery s",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("runner", "config", "fault") else "right")
    for group in side_by_side(fault_groups(document["faults"])):
        f = group[0]
        alarm = any(r["lost"] or r["duplicate_effects"] or r.get("error") for r in group)
        table.add_row(
            system_key(f["runner"], f.get("broker")),
            f["config"],
            fault_label(f),
            str(len(group)),
            f"{'[red]' if alarm else ''}{span([r['lost'] for r in group])}/{span([r['expected'] for r in group])}",
            *(span([r.get(c, 0) for r in group]) for c in FAULT_COUNTS[1:]),
            span([r["recovery_s"] for r in group]),
        )
    return table


def _interrupt(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001 (a signal handler's signature)
    # SIGTERM (e.g. CI cancelling the job) takes the same path as Ctrl-C: teardown, then a partial result.
    raise KeyboardInterrupt


def main() -> None:
    app()


if __name__ == "__main__":
    main()
