"""Request and response models: the same for every backend."""

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, EmailStr, Field, StringConstraints, model_validator

from fbt_api.safe_text import header_value, mail_body
from fbt_tasks.images import MAX_SIDE
from fbt_tasks.jobs import JobState

MAX_MESSAGE_CHARS = 2000

Message = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_MESSAGE_CHARS)]
# Mail headers and body are checked before any stripping (fbt_api.safe_text says what is refused and why).
HeaderEmail = Annotated[EmailStr, BeforeValidator(header_value)]
Subject = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    BeforeValidator(header_value),
]
MailBody = Annotated[str, StringConstraints(min_length=1, max_length=20_000), BeforeValidator(mail_body)]
Side = Annotated[int, Field(ge=1, le=MAX_SIDE)]


class LogIn(BaseModel):
    msg: Message


class EmailIn(BaseModel):
    email: HeaderEmail
    subject: Subject = "Welcome!"
    body: MailBody = "Thanks for joining 🎉"


class ResizeIn(BaseModel):
    """Resize a generated test image of ``width`` x ``height`` down to ``target_width`` x ``target_height``."""

    width: Side = 1920
    height: Side = 1080
    target_width: Side = 320
    target_height: Side = 180
    seed: Annotated[int, Field(ge=0, le=2**31)] = 0

    @model_validator(mode="after")
    def _downscale_only(self) -> "ResizeIn":
        if self.target_width > self.width or self.target_height > self.height:
            raise ValueError("target size must not exceed the source size: this endpoint only downscales")
        return self


class Enqueued(BaseModel):
    status: str
    job_id: str
    backend: str


class EnqueueCostOut(BaseModel):
    enqueues: int
    cpu_s: float


class JobStatus(BaseModel):
    job_id: str
    backend: str
    state: JobState


class Health(BaseModel):
    status: str
    backend: str
    broker: str


class ErrorOut(BaseModel):
    detail: str | list[dict[str, object]]
