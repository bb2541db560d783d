"""The floors' API: a FastAPI app of the same shape as the project's ``POST /log/``, served the same way.

``bare``: the API-key header check, a JSON body with ``msg``, and ``{status, job_id, backend}`` back, and
nothing else: what FastAPI and uvicorn cost for a route of this shape (the accept decomposition's floor).

``raw-redis``: the same route, plus the job envelope LPUSHed to one Redis list (the raw-Redis floor's
consumers BRPOP it): a queue with no framework behind the same HTTP path.

Served exactly as ``fbt-api`` serves the project: uvicorn, one worker, access log off, the sync route on
anyio's threadpool resized to API_THREADPOOL tokens. Configuration comes from the environment: API_KEY,
API_THREADPOOL, FLOOR_MODE, and for raw-redis REDIS_URL and FLOOR_QUEUE.
"""

import json
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio.to_thread
import redis
import typer
import uvicorn
from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel, Field

from fbt_tasks.jobs import Job

MODES = ("bare", "raw-redis")


class LogIn(BaseModel):
    msg: str = Field(min_length=1, max_length=1000)


def create_app() -> FastAPI:
    mode = os.environ.get("FLOOR_MODE", "bare")
    key = os.environ["API_KEY"].encode()
    tokens = int(os.environ.get("API_THREADPOOL", "0"))
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if tokens:
            anyio.to_thread.current_default_thread_limiter().total_tokens = tokens
        if mode == "raw-redis":
            # One pooled client for every request, as the project's backends keep theirs.
            state["redis"] = redis.Redis.from_url(os.environ["REDIS_URL"])
        yield
        if "redis" in state:
            state["redis"].close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/log/")
    def log(body: LogIn, x_api_key: Annotated[str | None, Header()] = None) -> dict[str, str]:
        if x_api_key is None or not secrets.compare_digest(x_api_key.encode(), key):
            raise HTTPException(401, detail="Missing or invalid X-API-Key header")
        job = Job(kind="write_log", payload={"message": body.msg})
        if mode == "raw-redis":
            state["redis"].lpush(os.environ["FLOOR_QUEUE"], json.dumps(job.to_message()))
        return {"status": "queued", "job_id": job.id, "backend": mode}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve(port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")]) -> None:
    """Serve the floor app as fbt-api serves the project (1 worker, no access log)."""
    uvicorn.run(
        "fbt_bench.scenarios.floor_app:create_app",
        factory=True,
        host="127.0.0.1",
        port=port,
        access_log=False,
    )


if __name__ == "__main__":
    typer.run(serve)
