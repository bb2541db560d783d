"""``send_email``: a real SMTP delivery with timeouts, a stable Message-ID, and at-most-once sending."""

import smtplib
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import aiosmtplib

from fbt_tasks.once import run_once, run_once_async
from fbt_tasks.settings import Settings, get_settings


def build_message(to: str, subject: str, body: str, message_id: str, sender: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    # Stable per job, so a receiver can drop a redelivered copy: the idempotency key on the wire.
    msg["Message-ID"] = f"<{message_id}@fbt.localhost>"
    msg.set_content(body)
    return msg


def deliver(msg: EmailMessage, settings: Settings) -> None:
    # timeout bounds connect and every read, so a stalled server frees the worker slot.
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_s) as smtp:
        smtp.send_message(msg)


async def deliver_async(msg: EmailMessage, settings: Settings) -> None:
    """``deliver`` on aiosmtplib: one connection per message and the same timeout, without blocking the loop."""
    await aiosmtplib.send(
        msg,
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        timeout=settings.smtp_timeout_s,
        # smtplib never upgrades unasked; aiosmtplib would whenever the server offers STARTTLS. Same wire as sync.
        start_tls=False,
    )


def prepare(
    to: str, subject: str, body: str, message_id: str
) -> tuple[EmailMessage, Settings, dict[str, Any]]:
    """The message, the settings, and the send-once guard's arguments (empty when EMAIL_SEND_ONCE is off):
    everything ``send_email`` and its async twin decide before any I/O."""
    settings = get_settings()
    msg = build_message(to, subject, body, message_id, settings.mail_from)
    if not settings.email_send_once:
        return msg, settings, {}
    guard = {
        "key": f"email:{message_id}",
        "redis_url": settings.redis_url,
        # A little above one SMTP exchange at the full timeout: long enough not to expire mid-send.
        "lease_s": settings.smtp_timeout_s * 2 + 5,
        "socket_timeout_s": settings.redis_socket_timeout_s,
    }
    return msg, settings, guard


def send_email(to: str, subject: str, body: str, message_id: str) -> bool:
    """Send one email; return False if this message id was already sent (a redelivered task)."""
    msg, settings, guard = prepare(to, subject, body, message_id)
    if guard:
        return run_once(effect=lambda: deliver(msg, settings), **guard)
    deliver(msg, settings)
    return True


async def send_email_async(to: str, subject: str, body: str, message_id: str) -> bool:
    """``send_email`` awaited: the same message and guard, over aiosmtplib and redis' asyncio client."""
    msg, settings, guard = prepare(to, subject, body, message_id)
    if guard:
        return await run_once_async(effect=lambda: deliver_async(msg, settings), **guard)
    await deliver_async(msg, settings)
    return True
