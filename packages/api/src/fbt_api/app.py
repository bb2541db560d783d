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
from fbt_tasks.backend import BrokerUnavailable, load_backend
from fbt_tasks.settings import Settings, get_settings

__all__ = ["MAX_BODY_BYTES", "MAX_UPLOAD_BYTES", "create_app"]


def make_lifespan(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.api_threadpool:
            # Starlette runs sync routes and sync BackgroundTasks on anyio's limiter (40 tokens by default).
            anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threadpool
        app.state.settings = settings
        app.state.backend = load_backend(settings)
        yield
        close = getattr(app.state.backend, "close", None)
        if close is not None:
            close()

    return lifespan


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="Fast Background Tasks",
        summary="One API, four background-task runners: BackgroundTasks, Celery, RQ, Dramatiq.",
        version="0.1.0",
        lifespan=make_lifespan(settings),
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
