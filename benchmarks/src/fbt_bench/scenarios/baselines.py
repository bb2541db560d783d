"""The floors: ``raw-redis`` (LPUSH/BRPOP, no framework) and ``direct-call`` (the function, no queue).

Both run the same tasks through ``run_job`` into a ledger, against their own embedded Redis and an SMTP
sink with the same per-message delay, with the same slot count as the runners, and produce records of the
same shape, so each system's overhead can be read as the distance from these floors.
"""

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis.asyncio

from fbt_bench.measuring import loadgen, stats
from fbt_bench.measuring.ledger_reader import LedgerFollower, LedgerTally
from fbt_bench.measuring.sampler import ProcSet, ResourceSampler, own_process
from fbt_bench.profiles import Profile
from fbt_bench.progress import ProgressSink
from fbt_bench.scenarios.baseline_worker import job_for
from fbt_bench.scenarios.context import drain_ledger
from fbt_bench.scenarios.record import make_record
from fbt_devstack.processes import ProcessGroup
from fbt_devstack.redis_server import RedisServer
from fbt_devstack.sink import start_sink

# How the report names the floors.
DISPLAY_NAMES = {"raw-redis": "raw Redis", "direct-call": "direct call"}
BASELINES: tuple[str, ...] = tuple(DISPLAY_NAMES)
# What results.json records under runners.<floor>.
DESCRIPTIONS: dict[str, dict[str, Any]] = {
    "raw-redis": {
        "description": "LPUSH by the harness, BRPOP loops calling run_job: no framework, no acks, no retries",
        "layout": "worker_processes processes x worker_threads threads, the runners' slot budget",
    },
    "direct-call": {
        "description": "run_job called in-process through a pool of `slots` threads: no queue, no HTTP",
        "layout": "1 process x slots threads",
    },
}
SCENARIO_KIND = {"log-burst": "write_log", "email-io": "send_email"}
CONSUMER_START_TIMEOUT_S = 30.0
# The direct-call process exits once its pool is drained; this only bounds a hung one.
PROCESS_EXIT_TIMEOUT_S = 10.0


@dataclass
class FloorServices:
    """Redis and an SMTP sink for the floors, plus the processes started for them."""

    workdir: Path
    redis_server: RedisServer
    smtp_port: int
    smtp_pid: int
    processes: ProcessGroup = field(default_factory=ProcessGroup)

    def env(self, ledger: Path) -> dict[str, str]:
        return {
            **os.environ,
            "REDIS_URL": self.redis_server.url,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(self.smtp_port),
            "LEDGER_FILE": str(ledger),
            "LOG_FILE": str(self.workdir / "log.txt"),
            "MEDIA_DIR": str(self.workdir / "media"),
        }

    def groups(self, workers: list[int]) -> list[ProcSet]:
        return [
            ProcSet("api", []),
            ProcSet("workers", workers),
            ProcSet("broker", [self.redis_server.pid] if self.redis_server.pid else []),
            ProcSet("smtp", [self.smtp_pid]),
            own_process(),
        ]


@contextmanager
def floor_services(profile: Profile, workdir: Path) -> Iterator[FloorServices]:
    workdir.mkdir(parents=True, exist_ok=True)
    server = RedisServer(workdir=workdir / "redis")
    sink = ProcessGroup()
    try:
        server.start()
        smtp = start_sink(
            sink, workdir / "mailbox.jsonl", workdir / "smtp.log", delay_ms=profile.smtp_delay_ms
        )
        services = FloorServices(
            workdir=workdir, redis_server=server, smtp_port=smtp.port, smtp_pid=sink.pids("smtp")[0]
        )
        try:
            yield services
        finally:
            services.processes.stop_all(timeout_s=5)
    finally:
        sink.stop_all(timeout_s=5)
        server.stop()


async def raw_redis(
    services: FloorServices, scenario: str, profile: Profile, repeat: int, config: str, progress: ProgressSink
) -> dict[str, Any]:
    kind, n = SCENARIO_KIND[scenario], _n_for(scenario, profile)
    ledger = services.workdir / f"ledger-raw-{scenario}-{repeat}.jsonl"
    queue = f"fbt:floor:{uuid.uuid4().hex}"
    env = services.env(ledger)
    names = []
    for index in range(profile.worker_processes):
        name = f"raw-consumer-{index}"
        argv = [
            sys.executable,
            "-m",
            "fbt_bench.scenarios.baseline_worker",
            "consume",
            "--redis-url",
            services.redis_server.url,
        ]
        argv += ["--queue", queue, "--threads", str(profile.worker_threads)]
        services.processes.spawn(name, argv, env=env, log_path=services.workdir / f"{name}.log")
        names.append(name)
    try:
        client = redis.asyncio.Redis.from_url(services.redis_server.url)
        try:
            await _warm_up(client, queue, ledger, progress)

            async def push(i: int) -> loadgen.Outcome:
                job = job_for(kind, i)
                await client.lpush(queue, json.dumps(job.to_message()))
                return loadgen.Outcome(ok=True, status=200, job_id=job.id)

            follower = LedgerFollower.from_end(ledger)
            workers = [pid for name in names for pid in services.processes.pids(name)]
            with ResourceSampler(lambda: services.groups(workers)) as sampler:
                progress.phase(f"raw-redis r{repeat} {scenario}: pushing {n}")
                began = time.time()
                sent = await loadgen.burst(push, n, profile.burst_concurrency)
                sent_wall = time.time()
                follower.expect(sent.job_ids)
                label = f"raw-redis r{repeat} {scenario} completed"
                await drain_ledger(follower, len(sent.job_ids), profile, progress, label)
                resources = sampler.stop()
        finally:
            await client.aclose()
    finally:
        for name in names:
            services.processes.stop(name, timeout_s=5)
    tally = follower.tally(expected=n)
    duration = max((tally.last_finished_at or began) - began, 0.0)
    return _record(
        "raw-redis", scenario, repeat, config, profile, tally, duration, resources, sent, sent_wall - began
    )


async def direct_call(
    services: FloorServices, scenario: str, profile: Profile, repeat: int, config: str, progress: ProgressSink
) -> dict[str, Any]:
    kind, n = SCENARIO_KIND[scenario], _n_for(scenario, profile)
    ledger = services.workdir / f"ledger-direct-{scenario}-{repeat}.jsonl"
    follower = LedgerFollower(ledger, track_all=True)
    argv = [
        sys.executable,
        "-m",
        "fbt_bench.scenarios.baseline_worker",
        "direct",
        "--kind",
        kind,
        "--n",
        str(n),
    ]
    argv += ["--threads", str(profile.slots)]
    progress.phase(f"direct-call r{repeat} {scenario}: {n} calls")
    proc = services.processes.spawn(
        "direct", argv, env=services.env(ledger), log_path=services.workdir / "direct.log"
    )
    try:
        with ResourceSampler(lambda: services.groups([proc.pid])) as sampler:
            await drain_ledger(follower, n, profile, progress, f"direct-call r{repeat} {scenario} completed")
            resources = sampler.stop()
        with contextlib.suppress(psutil.TimeoutExpired):
            await asyncio.to_thread(proc.wait, PROCESS_EXIT_TIMEOUT_S)
    finally:
        services.processes.stop("direct", timeout_s=5)
    tally = follower.tally(expected=n)
    return _record(
        "direct-call", scenario, repeat, config, profile, tally, tally.span_s, resources, None, None
    )


async def _warm_up(client: redis.asyncio.Redis, queue: str, ledger: Path, progress: ProgressSink) -> None:
    """One job end to end proves the consumers are up (they BRPOP, so nothing is lost while they start)."""
    follower = LedgerFollower.from_end(ledger)
    job = job_for("write_log", -1)
    follower.expect([job.id])
    await client.lpush(queue, json.dumps(job.to_message()))
    tally = await asyncio.to_thread(follower.wait, 1, drain_timeout_s=CONSUMER_START_TIMEOUT_S)
    if not tally.done:
        raise RuntimeError(f"raw-redis consumers did not run a job within {CONSUMER_START_TIMEOUT_S:.0f} s")


def _n_for(scenario: str, profile: Profile) -> int:
    return profile.log_burst_n if scenario == "log-burst" else profile.email_n


def _record(
    runner: str,
    scenario: str,
    repeat: int,
    config: str,
    profile: Profile,
    tally: LedgerTally,
    duration_s: float,
    resources: dict[str, Any],
    sent: loadgen.BurstResult | None,
    send_s: float | None,
) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if scenario == "log-burst":
        extra = {
            "send_s": round(send_s or 0.0, 3),
            "drain_s": round(max(duration_s - (send_s or 0.0), 0.0), 3),
        }
    else:
        ideal = profile.slots / (profile.smtp_delay_ms / 1000.0) if profile.smtp_delay_ms else None
        throughput = tally.completed / duration_s if duration_s else 0.0
        extra = {
            "ideal_throughput_per_s": round(ideal, 2) if ideal else None,
            "efficiency": round(throughput / ideal, 3) if ideal else None,
            "delay_ms": profile.smtp_delay_ms,
        }
    warnings = []
    if sent is not None and sent.errors:
        warnings.append(
            f"{sent.errors} of {sent.sent} LPUSHes failed (e.g. {'; '.join(sent.error_samples[:2])})"
        )
    return make_record(
        runner=runner,
        scenario=scenario,
        repeat=repeat,
        config=config,
        tally=tally,
        duration_s=duration_s,
        resources=resources,
        enqueue_latency_ms=stats.summarize_ms(sent.latencies_ms) if sent is not None else None,
        extra=extra,
        warnings=warnings,
    )


BASELINE_RUNS = {"raw-redis": raw_redis, "direct-call": direct_call}
