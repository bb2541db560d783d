"""The floors: ``raw-redis`` (a queue with no framework behind the same API) and ``direct-call`` (no queue).

raw-redis runs accept, drain and steady exactly as the runners do: ``floor_app`` in raw-redis mode (the
same route shape, LPUSH of the job envelope) served like ``fbt-api``, and BRPOP consumers calling
``run_job`` (``baseline_worker consume``) in worker_processes processes x worker_threads threads, the
runners' slots. Its "library enqueue" is one LPUSH (``enqueue_probe --raw-redis-queue``).

direct-call is drain only: ``run_job`` on N jobs through a pool of ``slots`` threads, no broker, no HTTP.

``bare_app`` is the accept decomposition's floor: the same route without any enqueue, started once per
repeat and measured at each offered rate a runner asks for.
"""

import asyncio
import contextlib
import os
import secrets
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from fbt_bench.measuring.ledger_reader import LedgerFollower
from fbt_bench.measuring.sampler import ProcSet, ResourceSampler, own_process
from fbt_bench.profiles import Profile
from fbt_bench.progress import ProgressSink
from fbt_bench.scenarios.context import RepeatShared, drain_ledger
from fbt_bench.scenarios.drain import drain_record
from fbt_devstack.ports import free_port, http_status
from fbt_devstack.processes import ProcessGroup
from fbt_devstack.redis_server import RedisServer
from fbt_tasks.settings import Settings

# How the report names the floors.
DISPLAY_NAMES = {"raw-redis": "raw Redis", "direct-call": "direct call"}
BASELINES: tuple[str, ...] = tuple(DISPLAY_NAMES)
BROKERS = {"raw-redis": "redis", "direct-call": "none"}
# What results.json records under runners.<floor>.
DESCRIPTIONS: dict[str, dict[str, Any]] = {
    "raw-redis": {
        "display_name": "raw Redis",
        "broker": "redis",
        "runs_in_api": False,
        "description": "the same API route shape LPUSHes the job; BRPOP loops call run_job: no framework, "
        "no acks, no retries",
        "slot_layout": "{processes} processes x {threads} threads, the runners' slot budget",
    },
    "direct-call": {
        "display_name": "direct call",
        "broker": "none",
        "runs_in_api": False,
        "description": "run_job called through a pool of `slots` threads: no queue, no HTTP (drain only)",
        "slot_layout": "1 process x {slots} threads",
    },
}


def floor_facts(name: str, profile: Profile) -> dict[str, Any]:
    """What results.json records under runners.<floor>, its layout in this run's numbers."""
    facts = dict(DESCRIPTIONS[name])
    facts["slot_layout"] = facts["slot_layout"].format(
        processes=profile.worker_processes, threads=profile.worker_threads, slots=profile.slots
    )
    return facts


START_TIMEOUT_S = 30.0
PROCESS_EXIT_TIMEOUT_S = 600.0


def _python(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def _wait_http(url: str, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while http_status(url, timeout_s=2) != 200:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer {url} within {START_TIMEOUT_S:.0f} s")
        time.sleep(0.1)


@contextmanager
def bare_app(profile: Profile, workdir: Path, shared: RepeatShared) -> Iterator[None]:
    """Serve the bare route for one repeat; its URL, key and pid go into ``shared``."""
    workdir.mkdir(parents=True, exist_ok=True)
    group, port, key = ProcessGroup(), free_port(), secrets.token_hex(16)
    env = {**os.environ, "FLOOR_MODE": "bare", "API_KEY": key, "API_THREADPOOL": str(profile.slots)}
    try:
        group.spawn(
            "bare",
            _python("fbt_bench.scenarios.floor_app", "--port", str(port)),
            env=env,
            log_path=workdir / "bare.log",
        )
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"{url}/health", "the bare floor app")
        shared.bare_url, shared.bare_key, shared.bare_pid = url, key, group.pids("bare")[0]
        yield
    finally:
        shared.bare_url = shared.bare_pid = None
        group.stop_all(timeout_s=5)


@dataclass
class RawRedisFloor:
    """The raw-Redis floor as a deployment the scenarios drive like a runner's stack."""

    profile: Profile
    workdir: Path
    redis_server: RedisServer
    api_url: str = ""
    api_key: str = field(default_factory=lambda: secrets.token_hex(16))
    queue: str = field(default_factory=lambda: f"fbt:floor:{uuid.uuid4().hex}")
    processes: ProcessGroup = field(default_factory=ProcessGroup)
    runner: str = "raw-redis"
    topology: str = "local"
    broker: str = "redis"
    runs_in_api: bool = False

    @property
    def redis_url(self) -> str:
        return self.redis_server.url

    @property
    def ledger_path(self) -> Path:
        return self.workdir / "ledger.jsonl"

    @property
    def settings(self) -> Settings:
        return Settings(redis_url=self.redis_url, ledger_file=self.ledger_path)

    def probe_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "LEDGER_FILE": str(self.ledger_path),
            "LOG_FILE": str(self.workdir / "log.txt"),
            "MEDIA_DIR": str(self.workdir / "media"),
            "API_KEY": self.api_key,
            "API_THREADPOOL": str(self.profile.slots),
            "FLOOR_MODE": "raw-redis",
            "FLOOR_QUEUE": self.queue,
        }

    def probe_args(self) -> list[str]:
        return ["--raw-redis-queue", self.queue]

    def start(self) -> None:
        port = free_port()
        self.processes.spawn(
            "api",
            _python("fbt_bench.scenarios.floor_app", "--port", str(port)),
            env=self.probe_env(),
            log_path=self.workdir / "floor-api.log",
        )
        self.api_url = f"http://127.0.0.1:{port}"
        _wait_http(f"{self.api_url}/health", "the raw-Redis floor app")
        self.start_workers()

    def start_workers(self) -> None:
        p = self.profile
        for index in range(p.worker_processes):
            argv = _python(
                "fbt_bench.scenarios.baseline_worker",
                "consume",
                "--redis-url",
                self.redis_url,
                "--queue",
                self.queue,
                "--threads",
                str(p.worker_threads),
            )
            self.processes.spawn(
                f"consumer-{index}",
                argv,
                env=self.probe_env(),
                log_path=self.workdir / f"consumer-{index}.log",
            )

    def stop_workers(self) -> None:
        for index in range(self.profile.worker_processes):
            self.processes.stop(f"consumer-{index}", timeout_s=5)

    def _workers(self) -> list[int]:
        return [
            pid
            for name in self.processes.names
            if name.startswith("consumer-")
            for pid in self.processes.pids(name)
        ]

    def groups(self) -> list[ProcSet]:
        return [
            ProcSet("api", self.processes.pids("api")),
            ProcSet("workers", self._workers()),
            ProcSet("broker", [self.redis_server.pid] if self.redis_server.pid else []),
            own_process(),
        ]

    def pids(self) -> list[int]:
        return [pid for group in self.groups()[:3] for pid in group.roots]


@contextmanager
def raw_redis_floor(profile: Profile, workdir: Path) -> Iterator[RawRedisFloor]:
    workdir.mkdir(parents=True, exist_ok=True)
    server = RedisServer(workdir=workdir / "redis")
    floor = RawRedisFloor(profile=profile, workdir=workdir, redis_server=server)
    try:
        server.start()
        floor.start()
        yield floor
    finally:
        floor.processes.stop_all(timeout_s=5)
        server.stop()


async def direct_call_drain(
    profile: Profile, workdir: Path, repeat: int, config: str, progress: ProgressSink
) -> dict[str, Any]:
    """drain for the direct-call floor: run_job on N jobs through a pool of ``slots`` threads."""
    workdir.mkdir(parents=True, exist_ok=True)
    n, ledger = profile.drain_n, workdir / f"ledger-direct-{repeat}.jsonl"
    follower = LedgerFollower(ledger, track_all=True)
    env = {**os.environ, "LEDGER_FILE": str(ledger), "LOG_FILE": str(workdir / "log.txt")}
    argv = _python(
        "fbt_bench.scenarios.baseline_worker",
        "direct",
        "--kind",
        "write_log",
        "--n",
        str(n),
        "--threads",
        str(profile.slots),
    )
    progress.phase(f"direct-call r{repeat} drain: {n} calls")
    group = ProcessGroup()
    proc = group.spawn("direct", argv, env=env, log_path=workdir / "direct.log")
    try:
        groups = lambda: [ProcSet("workers", [proc.pid]), own_process()]  # noqa: E731
        with ResourceSampler(groups) as sampler:
            started = time.time()
            await drain_ledger(follower, n, profile, progress, f"direct-call r{repeat} drained")
            resources = sampler.stop()
        with contextlib.suppress(psutil.TimeoutExpired):
            await asyncio.to_thread(proc.wait, PROCESS_EXIT_TIMEOUT_S)
    finally:
        group.stop_all(timeout_s=5)
    tally = follower.tally(expected=n)
    return drain_record("direct-call", repeat, config, "none", n, tally, resources, started, {})
