"""Which task errors are worth another attempt: the one list every runner's retry policy reads.

A transient error may pass by itself (the SMTP server or Redis was briefly unavailable, a send-once lease was
still held); a permanent one (a ValueError from a header that can never be sent) fails the same way on every
attempt, so retrying it only delays the failure and holds a slot. Runners translate this tuple into their
library's own filter (Celery ``autoretry_for``, Dramatiq ``retry_when``, an RQ exception handler); no queue
library is imported here.
"""

import smtplib
from importlib import import_module

import aiosmtplib
import redis.exceptions

from fbt_tasks.once import AlreadyInFlight

# OSError covers ConnectionError, socket timeouts and refused connects (and smtplib.SMTPException, a subclass
# since Python 3.4, named anyway so the report lists it). aiosmtplib's SMTPException (the async twin's SMTP
# client) is not an OSError; it is named so both paths retry the same SMTP failures. redis-py's ConnectionError
# and TimeoutError (its asyncio client raises the same classes) are not OSErrors; nor is OutOfMemoryError, a
# Redis at its maxmemory refusing a write, which passes once the server has room. AlreadyInFlight: another
# attempt still held the send-once lease; it ends by itself.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    smtplib.SMTPException,
    aiosmtplib.SMTPException,
    OSError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.OutOfMemoryError,
    AlreadyInFlight,
)


def error_name(error: type[BaseException]) -> str:
    """The dotted name a queue config records ("smtplib.SMTPException", "OSError" for built-ins)."""
    module = "" if error.__module__ == "builtins" else f"{error.__module__}."
    return f"{module}{error.__qualname__}"


TRANSIENT_ERROR_NAMES: tuple[str, ...] = tuple(error_name(error) for error in TRANSIENT_ERRORS)


def resolve(names: list[str] | tuple[str, ...]) -> tuple[type[BaseException], ...]:
    """The exception classes behind recorded names (queue configs keep names so the report can show them)."""
    found: list[type[BaseException]] = []
    for name in names:
        module, _, attr = name.rpartition(".")
        error = getattr(import_module(module or "builtins"), attr)
        if not (isinstance(error, type) and issubclass(error, BaseException)):
            raise ValueError(f"{name!r} is not an exception class")
        found.append(error)
    return tuple(found)


def is_transient(error: BaseException) -> bool:
    return isinstance(error, TRANSIENT_ERRORS)
