"""One comparison run: every repeat, runners in a shuffled order, each on a fresh stack, then the floors.

Whatever happens (a runner that fails to start, a scenario that errors, Ctrl-C), every process started is
torn down and what was measured is still written, marked partial, with the reason in the warnings.
"""

import asyncio
import os
import random
import shutil
import tempfile
import traceback
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fbt_bench import topology
from fbt_bench.faults.model import SHORT
from fbt_bench.faults.run import compare_pass, parameters
from fbt_bench.measuring.environment import describe_environment, runner_facts
from fbt_bench.profiles import SCENARIOS, Profile
from fbt_bench.progress import NullProgress, ProgressSink
from fbt_bench.report import write_reports
from fbt_bench.results import finalize, new_document, run_directory, write_results
from fbt_bench.scenarios import baselines
from fbt_bench.scenarios.context import ScenarioContext, warm_up
from fbt_bench.scenarios.registry import SCENARIO_RUNS
from fbt_bench.schema import validate_results
from fbt_tasks.runner import BROKER_TITLES, QueueConfigName
from fbt_tasks.settings import ANYIO_DEFAULT_THREADPOOL


@dataclass(frozen=True)
class Plan:
    profile: Profile
    runners: tuple[str, ...]
    scenarios: tuple[str, ...] = SCENARIOS
    baselines: tuple[str, ...] = baselines.BASELINES
    config: QueueConfigName = "safe"
    seed: int = 0
    out_root: Path = Path("results")
    command: str | None = None
    # The short fault pass (fbt_bench.faults.SHORT: kill-worker, both queue configs) after the scenarios.
    fault_pass: bool = True
    # The brokers to measure each runner on (None: every broker it supports that this machine can provide).
    brokers: tuple[str, ...] | None = None


@dataclass
class RunOutcome:
    document: dict[str, Any]
    results_path: Path
    interrupted: bool = False
    failures: list[str] = field(default_factory=list)


def runner_orders(runners: tuple[Any, ...], repeats: int, seed: int) -> list[list[Any]]:
    """A shuffled runner order per repeat, so drift on a shared machine does not always hit the same one."""
    rng = random.Random(seed)
    orders = []
    for _ in range(repeats):
        order = list(runners)
        rng.shuffle(order)
        orders.append(order)
    return orders


def parameters_for(
    plan: Plan, systems: list[topology.System], orders: list[list[topology.System]]
) -> dict[str, Any]:
    return {
        **plan.profile.parameters(),
        "runner_order": [[system.key for system in order] for order in orders],
        # The measured configurations' keys in ``runners`` (a runner on a second broker: <runner>/<broker>).
        "runners": [system.key for system in systems],
        "brokers": list(plan.brokers) if plan.brokers is not None else "all available",
        "scenarios": list(plan.scenarios),
        "baselines": list(plan.baselines),
        "config": plan.config,
        "seed": plan.seed,
        # Every runner's API gets this threadpool; for BackgroundTasks it is also the task slots.
        "api_threadpool": plan.profile.slots,
        "anyio_default_threadpool": ANYIO_DEFAULT_THREADPOOL,
        "uvicorn": {"workers": 1, "access_log": False},
    }


def run(plan: Plan, progress: ProgressSink | None = None, env: Mapping[str, str] = os.environ) -> RunOutcome:
    progress = progress or NullProgress()
    external = topology.external_urls(env)
    runners = tuple(r for r in plan.runners if not external or r in external)
    # External mode measures the deployment as it is configured: its runners' default brokers only.
    systems, skipped = topology.plan_systems(runners, ("redis", "none") if external else plan.brokers)
    orders = runner_orders(tuple(systems), plan.profile.repeats, plan.seed)
    progress.phase("recording the environment")
    document = new_document(
        profile=plan.profile.name,
        topology="external" if external else "local",
        environment=describe_environment(env.get("REDIS_URL") if external else None),
        parameters=parameters_for(plan, systems, orders),
        runners={},
    )
    if plan.command:
        document["command"] = plan.command
    # A broker this machine cannot provide (no rabbitmq-server, no AMQP_URL): its rows are skipped, said why.
    document["warnings"].extend(skipped)
    for line in skipped:
        progress.phase(f"skipped: {line}")
    if external:
        document["warnings"].append(
            "external topology: only the load generator's resources are measured, and the SMTP sink's delay "
            f"is the deployment's own (email-io's ideal assumes {plan.profile.smtp_delay_ms} ms per message)"
        )
    failures: list[str] = []
    interrupted = False
    workroot = Path(tempfile.mkdtemp(prefix="fbt-bench-"))
    try:
        for repeat, order in enumerate(orders):
            for system in order:
                failures += measure_runner(plan, system, repeat, document, workroot, progress, external, env)
            if plan.baselines and not external:
                failures += measure_baselines(plan, repeat, document, workroot, progress)
        if plan.fault_pass and not external:
            brokers = tuple(dict.fromkeys(system.broker for system in systems))
            failures += measure_faults(runners, document, workroot, progress, brokers)
    except KeyboardInterrupt:
        interrupted = True
        failures.append("interrupted (Ctrl-C)")
    if failures:
        kept = run_directory(plan.out_root, document["created_at"]) / "logs"
        shutil.copytree(workroot, kept, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.jsonl", "*.rdb"))
        document["warnings"].append(f"process logs of this run kept in {kept}")
    shutil.rmtree(workroot, ignore_errors=True)
    name_brokers(document, systems)
    finalize(document, partial_reason="; ".join(failures) if failures else None)
    path = write_results(document, plan.out_root)
    return RunOutcome(document=document, results_path=path, interrupted=interrupted, failures=failures)


def publish(outcome: RunOutcome) -> tuple[list[Path], list[str]]:
    """Validate results.json against the schema and write report.md and report.html next to it.

    Returns the report files and any problems (schema violations, a report that failed); the results file
    is already on disk either way, so nothing measured is lost.
    """
    problems: list[str] = []
    try:
        validate_results(outcome.document)
    except ValueError as exc:
        problems.append(str(exc))
    reports: list[Path] = []
    try:
        reports = write_reports(outcome.document, outcome.results_path.parent)
    except Exception as exc:
        problems.append(f"writing the reports failed: {_brief(exc)}")
    return reports, problems


def measure_runner(
    plan: Plan,
    system: topology.System,
    repeat: int,
    document: dict[str, Any],
    workroot: Path,
    progress: ProgressSink,
    external: Mapping[str, str],
    env: Mapping[str, str],
) -> list[str]:
    """Start the system's stack, warm it up, run every scenario, tear it down; return what failed."""
    runner, key = system.runner, system.key
    progress.phase(f"{key} repeat {repeat}: starting {'(external)' if external else 'the stack'}")
    try:
        if external:
            deployment_cm = topology.external_deployment(runner, plan.profile, plan.config, env)
        else:
            workdir = workroot / f"{key.replace('/', '-')}-r{repeat}"
            deployment_cm = topology.local_deployment(
                runner, plan.profile, plan.config, workdir, system.broker
            )
        with deployment_cm as deployment:
            if key not in document["runners"]:
                # The plugin's facts, then its backend's describe(): the configuration in force.
                document["runners"][key] = runner_facts(deployment.settings)
            ctx = ScenarioContext(runner, repeat, plan.config, plan.profile, deployment, progress, plan.seed)
            return asyncio.run(run_scenarios(ctx, plan.scenarios, document))
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        return [f"{key} repeat {repeat} aborted: {_brief(exc)}"]


async def run_scenarios(
    ctx: ScenarioContext, scenarios: tuple[str, ...], document: dict[str, Any]
) -> list[str]:
    ctx.progress.phase(f"{ctx.runner} repeat {ctx.repeat}: warming up")
    warm = await warm_up(ctx)
    if not warm.done:
        return [f"{ctx.tag('warm-up')}: only {warm.completed} of {warm.expected} warm-up jobs completed"]
    failures = []
    for name in scenarios:
        try:
            record = await SCENARIO_RUNS[name](ctx)
            # Records keep the plain runner name; the broker says which of its configurations ran.
            record["broker"] = ctx.deployment.settings.broker_name
            document["records"].append(record)
        except Exception as exc:
            failures.append(f"{ctx.runner} repeat {ctx.repeat} {name} failed: {_brief(exc)}")
    return failures


def measure_baselines(
    plan: Plan, repeat: int, document: dict[str, Any], workroot: Path, progress: ProgressSink
) -> list[str]:
    floor_scenarios = [s for s in ("log-burst", "email-io") if s in plan.scenarios]
    if not floor_scenarios:
        return []
    progress.phase(f"baselines repeat {repeat}: starting Redis and the SMTP sink")
    failures = []
    try:
        with baselines.floor_services(plan.profile, workroot / f"floors-r{repeat}") as services:
            for name in plan.baselines:
                document["runners"].setdefault(name, baselines.DESCRIPTIONS[name])
                for scenario in floor_scenarios:
                    try:
                        record = asyncio.run(
                            baselines.BASELINE_RUNS[name](
                                services, scenario, plan.profile, repeat, plan.config, progress
                            )
                        )
                        record.setdefault("broker", FLOOR_BROKERS.get(name, "none"))
                        document["records"].append(record)
                    except Exception as exc:
                        failures.append(f"{name} repeat {repeat} {scenario} failed: {_brief(exc)}")
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        failures.append(f"baselines repeat {repeat} aborted: {_brief(exc)}")
    return failures


MAX_REASON_CHARS = 400
# What each floor runs on: raw-redis is Redis lists, direct-call no queue at all.
FLOOR_BROKERS = {"raw-redis": "redis", "direct-call": "none"}


def name_brokers(document: dict[str, Any], systems: list[topology.System]) -> None:
    """A runner measured on more than one broker: each of its entries says which ("Celery on RabbitMQ")."""
    counts = Counter(system.runner for system in systems)
    for system in systems:
        facts = document["runners"].get(system.key)
        if counts[system.runner] > 1 and facts is not None and "display_name" in facts:
            facts["display_name"] = f"{facts['display_name']} on {BROKER_TITLES[system.broker]}"


def measure_faults(
    runners: tuple[str, ...],
    document: dict[str, Any],
    workroot: Path,
    progress: ProgressSink,
    brokers: tuple[str, ...] | None = None,
) -> list[str]:
    """Kill each runner's workers mid-burst in both queue configs on each measured broker: the report's
    loss row, every run."""
    progress.phase("faults: SIGKILL mid-burst, every runner and broker, both queue configurations")
    try:
        document["faults"], not_measured = compare_pass(runners, workroot, progress, brokers)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # the scenarios measured so far must still be written
        return [f"fault pass aborted: {_brief(exc)}"]
    document["parameters"]["faults"] = parameters(SHORT)
    return not_measured


def _brief(exc: BaseException) -> str:
    """One line for a warning; the full message (often a log tail) is in the kept process logs."""
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    at = f" (at {where[0].filename.rsplit('/', 1)[-1]}:{where[0].lineno})" if where else ""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first[:MAX_REASON_CHARS]}{at}"
