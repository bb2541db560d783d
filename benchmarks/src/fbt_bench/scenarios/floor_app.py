"""The floors' API: the project's own app (``fbt_api.app.create_app``), with an enqueue of the floor's own.

``bare``: the enqueue does nothing. Everything else is the project's route: the API-key dependency, the
query-or-JSON body, the ``Enqueued`` response rendered the same way, the same middleware and server. What it
costs is what FastAPI, uvicorn and the route cost without any queue: the API cost decomposition's floor, so
a runner's API CPU minus this minus the library's own enqueue (timed inside the API) is the project's share.

``raw-redis``: the enqueue is one LPUSH of the job envelope to one Redis list (the raw-Redis floor's
consumers BRPOP it): a queue with no framework behind the same HTTP path.

Served exactly as ``fbt-api`` serves the project: uvicorn with ``SERVER_OPTIONS``, one worker, access log off,
the sync route on anyio's threadpool resized to API_THREADPOOL tokens. Configuration comes from the
environment: API_KEY, API_THREADPOOL, FLOOR_MODE, and for raw-redis REDIS_URL and FLOOR_QUEUE.
"""

import json
import os
from typing import Annotated, Any

import redis
import typer
import uvicorn
from fastapi import FastAPI

from fbt_api.__main__ import SERVER_OPTIONS
from fbt_api.app import create_app as create_project_app
from fbt_tasks.enqueue_cost import LIBRARY_ENQUEUE
from fbt_tasks.jobs import Job, JobState
from fbt_tasks.settings import Settings

MODES = ("bare", "raw-redis")


class FloorBackend:
    """The enqueue of a floor: nothing (bare) or one LPUSH (raw-redis); the rest of the Backend is inert."""

    def __init__(self, mode: str) -> None:
        self.name = mode
        self._queue = os.environ.get("FLOOR_QUEUE", "")
        # One pooled client for every request, as the project's backends keep theirs.
        self._redis = redis.Redis.from_url(os.environ["REDIS_URL"]) if mode == "raw-redis" else None

    def enqueue(self, job: Job, delay_s: float = 0.0) -> None:  # noqa: ARG002 (the Backend protocol's signature)
        if self._redis is not None:
            data = json.dumps(job.to_message())
            with LIBRARY_ENQUEUE.timed():  # the floor's "library": one LPUSH
                self._redis.lpush(self._queue, data)

    def status(self, job_id: str) -> JobState | None:  # noqa: ARG002 (the Backend protocol's signature)
        return None

    def ping(self) -> bool:
        return True

    def describe(self) -> dict[str, Any]:
        return {"runner": self.name}

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()


def create_app() -> FastAPI:
    mode = os.environ.get("FLOOR_MODE", "bare")
    if mode not in MODES:
        raise ValueError(f"FLOOR_MODE must be one of {', '.join(MODES)}, got {mode!r}")
    # The API key and threadpool come from the environment, as the project's API reads them.
    return create_project_app(Settings(), backend=FloorBackend(mode))


def serve(port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")]) -> None:
    """Serve the floor app as fbt-api serves the project (1 worker, no access log)."""
    uvicorn.run(
        "fbt_bench.scenarios.floor_app:create_app",
        factory=True,
        host="127.0.0.1",
        port=port,
        access_log=False,
        **SERVER_OPTIONS,  # type: ignore[arg-type]
    )


if __name__ == "__main__":
    typer.run(serve)
