"""Enqueue without HTTP, in a process of its own: the library's own enqueue cost, and a queue to pre-fill.

``enqueue``: build ``n`` write_log jobs and hand each to the runner's own ``Backend.enqueue`` (settings from
the environment, as a worker gets them), paced at ``rate`` per second or as fast as it goes; print one JSON
line: how many, the CPU this process spent per enqueue, and (with ``--ids``) the ids of the jobs now on a
queue, which workers will run (the caller waits for them, so no later measurement inherits them). For a runner
whose tasks run in the API, enqueue is adding the job to a fresh Starlette ``BackgroundTasks`` (one per
request, as FastAPI makes them), which is then dropped unrun. ``--raw-redis-queue`` LPUSHes the envelope to
that list instead (the raw-Redis floor's enqueue).

"""

import json
import resource
import sys
import time
from typing import Annotated, Any

import redis
import typer
from starlette.background import BackgroundTasks

from fbt_tasks.backend import PerRequest
from fbt_tasks.jobs import Job
from fbt_tasks.registry import configured_settings, load_backend
from fbt_tasks.settings import get_settings

app = typer.Typer(add_completion=False, help=__doc__)


@app.callback()
def main() -> None:
    """Keeps ``enqueue`` a named subcommand, as the harness calls it."""


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _job(index: int) -> Job:
    return Job(kind="write_log", payload={"message": f"drain #{index}"})


@app.command()
def enqueue(
    n: Annotated[int, typer.Option(min=1, help="Jobs to enqueue.")],
    rate: Annotated[float, typer.Option(help="Enqueues per second; 0: as fast as it goes.")] = 0.0,
    ids: Annotated[bool, typer.Option(help="Print the job ids too.")] = False,
    raw_redis_queue: Annotated[str | None, typer.Option(help="LPUSH to this list instead.")] = None,
) -> None:
    """Enqueue ``n`` write_log jobs through the runner's own client; print the CPU per enqueue."""
    # The raw-Redis floor has no runner, so no BACKEND to configure: only its Redis URL is read.
    settings = get_settings() if raw_redis_queue else configured_settings()
    jobs = [_job(i) for i in range(n)]  # built before the clock: the job envelope is not the library's cost
    client = redis.Redis.from_url(settings.redis_url) if raw_redis_queue else None
    backend = None if client else load_backend(settings)
    dropped: set[str] = set()
    started, cpu_before = time.perf_counter(), _cpu_s()
    for index, job in enumerate(jobs):
        if rate > 0 and (delay := started + index / rate - time.perf_counter()) > 0:
            time.sleep(delay)
        if client is not None and raw_redis_queue is not None:
            client.lpush(raw_redis_queue, json.dumps(job.to_message()))
        elif backend is not None:
            background = BackgroundTasks()
            (backend.for_request(background) if isinstance(backend, PerRequest) else backend).enqueue(job)
            if background.tasks:
                dropped.add(job.id)  # the runner keeps tasks in-process: this one is dropped unrun
    cpu = _cpu_s() - cpu_before
    elapsed = time.perf_counter() - started
    if backend is not None:
        backend.close()
    out: dict[str, Any] = {"n": n, "cpu_us_per_enqueue": cpu * 1e6 / n, "elapsed_s": elapsed}
    if ids:
        out["ids"] = [job.id for job in jobs if job.id not in dropped]
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    app()
