"""The one FastAPI app. Routes, schemas and errors are identical for every backend.

This module only assembles: the lifespan that loads the configured backend, the error handlers, the body-size
limits and the routers (fbt_api.routes). It never looks at which runner is configured.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from fbt_api.errors import broker_unavailable, invalid_input
from fbt_api.limits import MAX_BODY_BYTES, MAX_UPLOAD_BYTES, UPLOAD_PATH, BodySizeLimit
from fbt_api.routes import api_router
from fbt_tasks.backend import Backend, BrokerUnavailable
from fbt_tasks.registry import configure, configured_settings, load_backend
from fbt_tasks.settings import Settings, get_settings

__all__ = ["MAX_BODY_BYTES", "MAX_UPLOAD_BYTES", "create_app"]


def make_lifespan(
    settings: Settings, backend: Backend | None = None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.api_threadpool:
            # Starlette runs sync routes and sync BackgroundTasks on anyio's limiter (40 tokens by default).
            anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threadpool
        app.state.settings = settings
        app.state.backend = backend if backend is not None else load_backend(settings)
        yield
        close = getattr(app.state.backend, "close", None)
        if close is not None:
            close()

    return lifespan


def create_app(settings: Settings | None = None, backend: Backend | None = None) -> FastAPI:
    """The app for ``settings``; ``backend`` replaces the configured runner's (the harness's floors serve
    this same app around an enqueue of their own, so a route's cost is compared on identical code)."""
    if backend is None:
        settings = configure(settings) if settings is not None else configured_settings()
    elif settings is None:
        settings = get_settings()
    app = FastAPI(
        title="Fast Background Tasks",
        summary="One API, every background-task runner: BackgroundTasks, Celery, RQ, Dramatiq, taskiq, arq, SAQ.",
        version="0.1.0",
        lifespan=make_lifespan(settings, backend),
        responses={422: {"description": "Invalid input; nothing was enqueued"}},
    )
    app.add_middleware(
        BodySizeLimit,
        max_bytes=MAX_BODY_BYTES,
        upload_max_bytes=MAX_UPLOAD_BYTES,
        upload_prefix=UPLOAD_PATH,
    )
    app.add_exception_handler(BrokerUnavailable, broker_unavailable)
    app.add_exception_handler(RequestValidationError, invalid_input)
    app.include_router(api_router)
    return app
