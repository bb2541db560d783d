"""One comparison run: every repeat, runners and floors interleaved in a shuffled order (from a recorded seed),
each on a fresh stack, its scenarios in a shuffled order too.

Whatever happens (a runner that fails to start, a scenario that errors, Ctrl-C), every process started is
torn down and what was measured is still written, marked partial, with the reason in the warnings.
"""

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fbt_bench import network, scaling, topology
from fbt_bench.eta import Eta
from fbt_bench.faults.model import SHORT
from fbt_bench.faults.run import compare_pass, parameters
from fbt_bench.measuring.environment import describe_environment, runner_facts
from fbt_bench.plan import Clock, Plan, parameters_for, pin_stack, placement, runner_orders, scenario_orders
from fbt_bench.progress import NullProgress, ProgressSink
from fbt_bench.report import write_reports
from fbt_bench.results import finalize, name_brokers, new_document, run_directory, write_results
from fbt_bench.scenarios import baselines
from fbt_bench.scenarios.burst import attach_crash_outcomes
from fbt_bench.scenarios.context import RepeatShared, ScenarioContext, warm_up
from fbt_bench.scenarios.registry import FLOOR_SCENARIOS, SCENARIO_RUNS
from fbt_bench.scenarios.steady import NoCapacity
from fbt_bench.schema import validate_results


@dataclass
class RunOutcome:
    document: dict[str, Any]
    results_path: Path
    interrupted: bool = False
    failures: list[str] = field(default_factory=list)


def _start_document(
    plan: Plan,
    systems: list[topology.System],
    orders: list[list[str]],
    scenarios: list[list[str]],
    skipped: list[str],
    external: Mapping[str, str],
    env: Mapping[str, str],
    progress: ProgressSink,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The results document before anything is measured (environment, parameters, skipped systems, the
    external topology's caveat) and the process placement it records."""
    progress.phase("recording the environment")
    document = new_document(
        profile=plan.profile.name,
        topology="external" if external else ("hosts" if plan.profile.rtts_ms else "local"),
        environment=describe_environment(env.get("REDIS_URL") if external else None),
        parameters=parameters_for(plan, systems, orders, scenarios),
        runners={},
    )
    where = placement(pin=not external)
    document["parameters"]["placement"] = where
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
    return document, where


def run(plan: Plan, progress: ProgressSink | None = None, env: Mapping[str, str] = os.environ) -> RunOutcome:
    progress = progress or NullProgress()
    external = topology.external_urls(env)
    runners = tuple(r for r in plan.runners if not external or r in external)
    # External mode measures the deployment as it is configured: its runners' default brokers only.
    systems, skipped = topology.plan_systems(runners, ("redis", "none") if external else plan.brokers)
    floors = () if external else plan.baselines
    orders = runner_orders((*(system.key for system in systems), *floors), plan.profile.repeats, plan.seed)
    scenarios = scenario_orders(plan.scenarios, plan.profile.repeats, plan.seed)
    document, where = _start_document(plan, systems, orders, scenarios, skipped, external, env, progress)
    failures: list[str] = []
    interrupted = False
    clock = Clock()
    by_key = {system.key: system for system in systems}
    workroot = Path(tempfile.mkdtemp(prefix="fbt-bench-"))
    # The hosts topology measures every unit once per RTT, the longest first: steady then offers every RTT the
    # load the slowest one sustains (the first drain's capacity is kept), so latencies compare at one load.
    rtts: tuple[float | None, ...] = tuple(sorted(plan.profile.rtts_ms, reverse=True)) or (None,)
    # The slot sweep measures every unit once per slot count, each split into processes x threads by one rule
    # over the cores the system under test has (fbt_bench.scaling).
    cores = scaling.stack_cores(where)
    plans = {slots: scaling.plan_at(plan, slots, cores) for slots in scaling.sweep(plan.profile)}
    if plan.profile.slot_sweep:
        document["parameters"]["scaling"] = scaling.parameters(plan.profile, cores)
    eta = Eta([unit for order in orders for unit in order for _ in rtts for _ in plans])
    try:
        for repeat, order in enumerate(orders):
            shared = RepeatShared(pin_loadgen=bool(where.get("pinned")))
            # The bare route only serves accept's cost decomposition.
            bare = (
                contextlib.nullcontext()
                if external or plan.profile.rtts_ms or "accept" not in scenarios[repeat]
                else baselines.bare_app(plan.profile, workroot / f"bare-r{repeat}", shared)
            )
            with bare:
                for unit in order:
                    for rtt in rtts:
                        for slots, at_slots in plans.items():
                            job = Unit(
                                at_slots,
                                unit,
                                repeat,
                                scenarios[repeat],
                                document,
                                workroot,
                                progress,
                                shared,
                                where,
                                clock,
                                by_key.get(unit),
                                rtt,
                                slots,
                                budget=slots is None or at_slots.profile.slots == plan.profile.slots,
                            )
                            began = time.monotonic()
                            failures += job.measure(external, env)
                            eta.finished(unit, time.monotonic() - began)
                            progress.phase(
                                eta.line()
                                + (" (then the fault pass)" if plan.fault_pass and not external else "")
                            )
        if plan.fault_pass and not external:
            since = time.monotonic()
            brokers = tuple(dict.fromkeys(system.broker for system in systems))
            failures += measure_faults(runners, document, workroot, progress, brokers)
            clock.add("faults", None, "fault pass", since)
    except KeyboardInterrupt:
        interrupted = True
        failures.append("interrupted (Ctrl-C)")
    document["parameters"]["time_spent_s"] = clock.record()
    if failures:
        kept = run_directory(plan.out_root, document["created_at"]) / "logs"
        shutil.copytree(workroot, kept, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.jsonl", "*.rdb"))
        document["warnings"].append(f"process logs of this run kept in {kept}")
    shutil.rmtree(workroot, ignore_errors=True)
    name_brokers(document["runners"], [(s.runner, s.broker, s.key) for s in systems])
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


@dataclass
class Unit:
    """One runner on one broker (or a floor) in one repeat: its stack, its scenarios in the repeat's order,
    its timings."""

    plan: Plan
    name: str
    repeat: int
    scenarios: list[str]
    document: dict[str, Any]
    workroot: Path
    progress: ProgressSink
    shared: RepeatShared
    where: dict[str, Any]
    clock: Clock
    # The runner and broker behind ``name`` (a system key); None for a floor.
    system: topology.System | None = None
    # The hosts topology's round-trip time to the broker; None: one loopback.
    rtt_ms: float | None = None
    # The slot sweep's slot count (``plan.profile`` is already split for it); None: outside a sweep.
    slots: int | None = None
    # Whether this unit runs at the run's own slot budget: its runner facts are the ones results.json keeps.
    budget: bool = True

    @property
    def label(self) -> str:
        at = [f"{self.rtt_ms:g} ms RTT"] if self.rtt_ms is not None else []
        at += [f"{self.slots} slots"] if self.slots is not None else []
        return f"{self.name} at {', '.join(at)}" if at else self.name

    @property
    def runner(self) -> str:
        """The plain runner name records carry (the broker is their own field); a floor's name."""
        return self.system.runner if self.system is not None else self.name

    def measure(self, external: Mapping[str, str], env: Mapping[str, str]) -> list[str]:
        if self.name == "direct-call":
            return self._direct_call()
        since = time.monotonic()
        self.progress.phase(f"{self.label} repeat {self.repeat}: starting the stack")
        try:
            with self._deployment(external, env) as deployment:
                self.clock.add(self.name, self.repeat, "stack start", since)
                pin_stack(deployment.pids(), self.where)
                # In a sweep the facts of the run's own budget are kept; each record says its own layout.
                keep = self.name not in self.document["runners"] or (self.slots is not None and self.budget)
                facts = self._facts(deployment) if keep or self.slots is not None else {}
                if keep:
                    self.document["runners"][self.name] = facts
                ctx = ScenarioContext(
                    self.runner,
                    self.repeat,
                    self.plan.config,
                    self.plan.profile,
                    deployment,
                    self.progress,
                    self.plan.seed,
                    self.shared,
                    full_api=self.name not in baselines.BASELINES,
                )
                return asyncio.run(self._scenarios(ctx, external, str(facts.get("slot_layout", ""))))
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            return [f"{self.label} repeat {self.repeat} aborted: {_brief(exc)}"]

    def _first_on_default_broker(self) -> bool:
        """Whether this unit measures the profile's ``once`` scenarios: the first repeat, the default broker."""
        if self.repeat > 0:
            return False
        # A system key is the plain runner name exactly on its default broker (fbt_tasks.registry.system_key).
        return self.system is None or self.system.key == self.system.runner

    def _deployment(self, external: Mapping[str, str], env: Mapping[str, str]) -> Any:
        p, config = self.plan.profile, self.plan.config
        workdir = self.workroot / f"{self.name.replace('/', '-')}-r{self.repeat}"
        if self.name == "raw-redis":
            return baselines.raw_redis_floor(p, workdir)
        if external:
            return topology.external_deployment(self.runner, p, config, env)
        broker = self.system.broker if self.system is not None else None
        if self.slots is not None:
            workdir = workdir.with_name(f"{workdir.name}-s{self.slots}")
        if self.rtt_ms is not None:
            workdir = workdir.with_name(f"{workdir.name}-rtt{self.rtt_ms:g}")
            return topology.hosts_deployment(self.runner, p, config, workdir, broker, self.rtt_ms)
        return topology.local_deployment(self.runner, p, config, workdir, broker)

    def _facts(self, deployment: Any) -> dict[str, Any]:
        if self.name in baselines.DESCRIPTIONS:
            return baselines.floor_facts(self.name, self.plan.profile)
        # The plugin's facts, then its backend's describe(): the configuration in force.
        return runner_facts(deployment.settings)

    async def _scenarios(
        self, ctx: ScenarioContext, external: Mapping[str, str], described: str
    ) -> list[str]:
        ctx.progress.phase(f"{ctx.key} repeat {ctx.repeat}: warming up")
        warm = await warm_up(ctx)
        if not warm.done:
            return [f"{ctx.tag('warm-up')}: only {warm.completed} of {warm.expected} warm-up jobs completed"]
        allowed = FLOOR_SCENARIOS.get(self.name)
        hosts = getattr(ctx.deployment, "hosts", None)
        rtt_measured = (
            await asyncio.to_thread(network.measured_rtt_ms, hosts, ctx.deployment.redis_url)
            if hosts
            else 0.0
        )
        failures = []
        for name in self.scenarios:
            if allowed is not None and name not in allowed:
                continue
            if name in self.plan.profile.once and not self._first_on_default_broker():
                continue
            if name == "drain" and external:
                self.document["warnings"].append(
                    f"{ctx.key}: drain not measured (external topology: its workers cannot be stopped)"
                )
                continue
            since = time.monotonic()
            try:
                before = network.commandstats(ctx.deployment.redis_url) if hosts else {}
                made = await SCENARIO_RUNS[name](ctx)
                made = made if isinstance(made, list) else [made]
                if hosts:
                    after = network.commandstats(ctx.deployment.redis_url)
                    network.annotate(made, hosts, rtt_measured, before, after)
                if self.slots is not None:
                    scaling.annotate(made, self.plan.profile, described)
                self.document["records"].extend(made)
            except NoCapacity as exc:  # nothing to take a fraction of: not measured, and said so
                self.document["warnings"].append(f"{ctx.key} repeat {ctx.repeat} steady not measured: {exc}")
            except Exception as exc:
                failures.append(f"{ctx.key} repeat {ctx.repeat} {name} failed: {_brief(exc)}")
            self.clock.add(self.name, self.repeat, name, since)
        return failures

    def _direct_call(self) -> list[str]:
        if "drain" not in self.scenarios:
            return []
        since = time.monotonic()
        facts = baselines.floor_facts(self.name, self.plan.profile)
        if self.name not in self.document["runners"] or (self.slots is not None and self.budget):
            self.document["runners"][self.name] = facts
        try:
            record = asyncio.run(
                baselines.direct_call_drain(
                    self.plan.profile,
                    self.workroot / f"direct-r{self.repeat}",
                    self.repeat,
                    self.plan.config,
                    self.progress,
                )
            )
            if self.slots is not None:
                scaling.annotate([record], self.plan.profile, facts["slot_layout"])
            self.document["records"].append(record)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            return [f"direct-call repeat {self.repeat} drain failed: {_brief(exc)}"]
        finally:
            self.clock.add(self.name, self.repeat, "drain", since)
        return []


MAX_REASON_CHARS = 400


def measure_faults(
    runners: tuple[str, ...],
    document: dict[str, Any],
    workroot: Path,
    progress: ProgressSink,
    brokers: tuple[str, ...] | None = None,
) -> list[str]:
    """Kill each runner's workers mid-burst in both queue configs on each measured broker: the report's
    loss row, every run."""
    progress.phase("faults: SIGKILL and SIGTERM mid-burst, every runner and broker")
    try:
        document["faults"], not_measured = compare_pass(runners, workroot, progress, brokers)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # the scenarios measured so far must still be written
        return [f"fault pass aborted: {_brief(exc)}"]
    document["parameters"]["faults"] = parameters(SHORT)
    attach_crash_outcomes(document["records"], document["faults"])
    return not_measured


def _brief(exc: BaseException) -> str:
    """One line for a warning; the full message (often a log tail) is in the kept process logs."""
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    at = f" (at {where[0].filename.rsplit('/', 1)[-1]}:{where[0].lineno})" if where else ""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first[:MAX_REASON_CHARS]}{at}"
