"""The one FastAPI app. Routes, schemas and errors are identical for every backend."""

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, TypeVar

import anyio.to_thread
from fastapi import (
    BackgroundTasks,
    Body,
    Depends,
    FastAPI,
    File,
    Form,
    HTTPException,
    Query,
    Request,
    UploadFile,
)
from fastapi.responses import JSONResponse
from PIL import Image, UnidentifiedImageError
from pydantic import EmailStr

from fbt_api.auth import get_current_user, get_settings_dep, require_api_key
from fbt_api.limits import BodySizeLimit
from fbt_api.schemas import EmailIn, Enqueued, ErrorOut, Health, JobStatus, LogIn, Message, ResizeIn, Side
from fbt_tasks.backend import Backend, BrokerUnavailable, load_backend
from fbt_tasks.images import MAX_SIDE
from fbt_tasks.jobs import Job
from fbt_tasks.settings import Settings, get_settings

MAX_BODY_BYTES = 64 * 1024
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
T = TypeVar("T")

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut, "description": "Missing or invalid X-API-Key"},
    413: {"model": ErrorOut, "description": "Request body too large"},
    503: {"model": ErrorOut, "description": "Broker unreachable; nothing was enqueued"},
}


def get_backend(request: Request) -> Backend:
    return request.app.state.backend


BackendDep = Annotated[Backend, Depends(get_backend)]


def submit(
    backend: Backend, background: BackgroundTasks, kind: str, payload: dict[str, object], status: str
) -> Enqueued:
    job = Job(kind=kind, payload=payload)
    backend.enqueue(job, background)
    return Enqueued(status=status, job_id=job.id, backend=backend.name)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

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

    app = FastAPI(
        title="Fast Background Tasks",
        summary="One API, four background-task runners: BackgroundTasks, Celery, RQ, Dramatiq.",
        version="0.1.0",
        lifespan=lifespan,
        responses={422: {"description": "Invalid input; nothing was enqueued"}},
    )
    app.add_middleware(
        BodySizeLimit,
        max_bytes=MAX_BODY_BYTES,
        upload_max_bytes=MAX_UPLOAD_BYTES,
        upload_prefix="/resize/upload",
    )

    @app.exception_handler(BrokerUnavailable)
    async def broker_unavailable(request: Request, exc: BrokerUnavailable) -> JSONResponse:
        consequence = ", nothing was enqueued" if request.method == "POST" else ""
        return JSONResponse(
            {"detail": f"Broker unavailable{consequence}: {exc}"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    guarded = [Depends(require_api_key)]

    @app.post("/log/", response_model=Enqueued, dependencies=guarded, responses=ERRORS)
    def log(
        background_tasks: BackgroundTasks,
        backend: BackendDep,
        msg: Annotated[Message | None, Query(description="The tutorial's query form.")] = None,
        body: Annotated[LogIn | None, Body(description='The JSON form: {"msg": ...}.')] = None,
    ) -> Enqueued:
        text = _one_of(msg, body.msg if body else None, "msg")
        return submit(
            backend, background_tasks, "write_log", {"message": text}, "Message logged in background"
        )

    @app.post("/send-mail/", response_model=Enqueued, dependencies=guarded, responses=ERRORS)
    def send_mail(
        background_tasks: BackgroundTasks,
        backend: BackendDep,
        email: Annotated[EmailStr | None, Query(description="The tutorial's query form.")] = None,
        body: Annotated[
            EmailIn | None, Body(description="The JSON form, with optional subject and body.")
        ] = None,
    ) -> Enqueued:
        mail = EmailIn(email=_one_of(email, body.email if body else None, "email")) if body is None else body
        job_payload = {"to": mail.email, "subject": mail.subject, "body": mail.body}
        job = Job(kind="send_email", payload=job_payload)
        # The job id doubles as the Message-ID, so a redelivered email is recognisably the same email.
        job.payload["message_id"] = job.id
        backend.enqueue(job, background_tasks)
        return Enqueued(
            status=f"Email to {mail.email} is being sent in background", job_id=job.id, backend=backend.name
        )

    @app.post("/notify/", response_model=Enqueued, responses=ERRORS)
    def notify_user(
        background_tasks: BackgroundTasks,
        backend: BackendDep,
        user: Annotated[dict[str, str], Depends(get_current_user)],
    ) -> Enqueued:
        return submit(
            backend, background_tasks, "notify", {"user": user["username"]}, "Notification scheduled"
        )

    @app.post("/resize", response_model=Enqueued, dependencies=guarded, responses=ERRORS)
    def resize(
        background_tasks: BackgroundTasks,
        backend: BackendDep,
        settings: Annotated[Settings, Depends(get_settings_dep)],
        spec: ResizeIn,
    ) -> Enqueued:
        _check_pixels(spec.width, spec.height, settings)
        payload = spec.model_dump()
        payload["output"] = f"{uuid.uuid4().hex}.jpg"
        return submit(backend, background_tasks, "resize_image", payload, "Image resize scheduled")

    @app.post("/resize/upload", response_model=Enqueued, dependencies=guarded, responses=ERRORS)
    def resize_upload(
        background_tasks: BackgroundTasks,
        backend: BackendDep,
        settings: Annotated[Settings, Depends(get_settings_dep)],
        file: Annotated[UploadFile, File(description=f"A PNG or JPEG of at most {MAX_UPLOAD_BYTES} bytes.")],
        target_width: Annotated[Side, Form()] = 320,
        target_height: Annotated[Side, Form()] = 180,
    ) -> Enqueued:
        source = _store_upload(file, settings)
        payload = {"source": source, "target_width": target_width, "target_height": target_height}
        payload["output"] = f"{uuid.uuid4().hex}.jpg"
        return submit(backend, background_tasks, "resize_image", payload, "Image resize scheduled")

    @app.get("/jobs/{job_id}", response_model=JobStatus, dependencies=guarded, responses=ERRORS)
    def job_status(job_id: str, backend: BackendDep) -> JobStatus:
        if not JOB_ID.match(job_id):
            raise HTTPException(422, detail="job_id must be 32 lowercase hex characters")
        state = backend.status(job_id)
        if state is None:
            raise HTTPException(404, detail=f"No job {job_id} known to the {backend.name} backend")
        return JobStatus(job_id=job_id, backend=backend.name, state=state)

    @app.get("/health", response_model=Health, responses={503: {"model": Health}})
    def health(backend: BackendDep) -> JSONResponse:
        up = backend.ping()
        body = Health(status="ok" if up else "degraded", backend=backend.name, broker="up" if up else "down")
        return JSONResponse(body.model_dump(), status_code=200 if up else 503)

    return app


def _one_of(query: T | None, body: T | None, name: str) -> T:
    if (query is None) == (body is None):
        raise HTTPException(
            422, detail=f"Give {name} either as a query parameter or in a JSON body, not both or neither"
        )
    return query if query is not None else body  # type: ignore[return-value]


def _check_pixels(width: int, height: int, settings: Settings) -> None:
    if width * height > settings.max_image_pixels:
        limit = settings.max_image_pixels / 1e6
        raise HTTPException(422, detail=f"Image of {width}x{height} exceeds the {limit:g}-megapixel limit")


def _store_upload(file: UploadFile, settings: Settings) -> str:
    """Check the upload is a real, sane image before anything is enqueued; return its path under media_dir."""
    try:
        with Image.open(file.file) as probe:
            probe.verify()
            width, height = probe.size
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise HTTPException(422, detail="Upload is not a readable PNG or JPEG image") from exc
    if width > MAX_SIDE or height > MAX_SIDE:
        raise HTTPException(422, detail=f"Uploaded image {width}x{height} exceeds {MAX_SIDE} px per side")
    _check_pixels(width, height, settings)
    name = f"in/{uuid.uuid4().hex}"
    target = settings.media_dir / name
    target.parent.mkdir(parents=True, exist_ok=True)
    file.file.seek(0)
    target.write_bytes(file.file.read())
    return name
