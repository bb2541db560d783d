"""The enqueueing routes: the tutorial's /log/, /send-mail/ and /notify/, and the image resizes.

Every route validates fully, then enqueues exactly one job: a 422 means nothing was enqueued.
"""

from typing import Annotated, TypeVar

from fastapi import APIRouter, Body, File, Form, HTTPException, Query, Response, UploadFile

from fbt_api.deps import REQUIRE_API_KEY, BackendDep, CurrentUser, SettingsDep
from fbt_api.errors import ERRORS
from fbt_api.limits import MAX_UPLOAD_BYTES, UPLOAD_PATH
from fbt_api.schemas import EmailIn, Enqueued, HeaderEmail, LogIn, Message, ResizeIn, Side
from fbt_api.uploads import check_pixels, output_name, store_upload
from fbt_tasks.backend import Backend
from fbt_tasks.jobs import Job

T = TypeVar("T")

router = APIRouter()


def submit(backend: Backend, job: Job, status: str) -> Response:
    backend.enqueue(job)
    # Rendered here, as FastAPI would render response_model=Enqueued, because a returned model is validated again
    # on a threadpool hop of its own (sync routes): the route's heaviest step after the enqueue, for a value built
    # from three strings. response_model still documents the body.
    body = Enqueued(status=status, job_id=job.id, backend=backend.name).model_dump_json()
    return Response(body, media_type="application/json")


def one_of(query: T | None, body: T | None, name: str) -> T:
    """The tutorial's query form or the JSON form: exactly one, so no value is silently ignored."""
    if query is not None and body is None:
        return query
    if body is not None and query is None:
        return body
    raise HTTPException(
        422, detail=f"Give {name} either as a query parameter or in a JSON body, not both or neither"
    )


@router.post("/log/", response_model=Enqueued, dependencies=REQUIRE_API_KEY, responses=ERRORS)
def log(
    backend: BackendDep,
    msg: Annotated[Message | None, Query(description="The tutorial's query form.")] = None,
    body: Annotated[LogIn | None, Body(description='The JSON form: {"msg": ...}.')] = None,
) -> Response:
    # Control characters are accepted here on purpose: the line writer escapes them (see fbt_api.safe_text).
    text = one_of(msg, body.msg if body else None, "msg")
    job = Job(kind="write_log", payload={"message": text})
    return submit(backend, job, "Message logged in background")


@router.post("/send-mail/", response_model=Enqueued, dependencies=REQUIRE_API_KEY, responses=ERRORS)
def send_mail(
    backend: BackendDep,
    email: Annotated[HeaderEmail | None, Query(description="The tutorial's query form.")] = None,
    body: Annotated[
        EmailIn | None, Body(description="The JSON form, with optional subject and body.")
    ] = None,
) -> Response:
    address = one_of(email, body.email if body else None, "email")
    mail = body or EmailIn(email=address)
    job = Job(kind="send_email", payload={"to": mail.email, "subject": mail.subject, "body": mail.body})
    # The job id doubles as the Message-ID, so a redelivered email is recognisably the same email.
    job.payload["message_id"] = job.id
    return submit(backend, job, f"Email to {mail.email} is being sent in background")


@router.post("/notify/", response_model=Enqueued, responses=ERRORS)
def notify_user(backend: BackendDep, user: CurrentUser) -> Response:
    job = Job(kind="notify", payload={"user": user["username"]})
    return submit(backend, job, "Notification scheduled")


@router.post("/resize", response_model=Enqueued, dependencies=REQUIRE_API_KEY, responses=ERRORS)
def resize(backend: BackendDep, settings: SettingsDep, spec: ResizeIn) -> Response:
    check_pixels(spec.width, spec.height, settings)
    job = Job(kind="resize_image", payload={**spec.model_dump(), "output": output_name()})
    return submit(backend, job, "Image resize scheduled")


@router.post(UPLOAD_PATH, response_model=Enqueued, dependencies=REQUIRE_API_KEY, responses=ERRORS)
def resize_upload(
    backend: BackendDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description=f"A PNG or JPEG of at most {MAX_UPLOAD_BYTES} bytes.")],
    target_width: Annotated[Side, Form()] = 320,
    target_height: Annotated[Side, Form()] = 180,
) -> Response:
    payload = {
        "source": store_upload(file, settings),
        "target_width": target_width,
        "target_height": target_height,
        "output": output_name(),
    }
    job = Job(kind="resize_image", payload=payload)
    return submit(backend, job, "Image resize scheduled")
