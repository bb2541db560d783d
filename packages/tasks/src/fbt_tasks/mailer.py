"""``send_email``: a real SMTP delivery with timeouts, a stable Message-ID, and at-most-once sending."""

import smtplib
from email.message import EmailMessage
from email.utils import formatdate

from fbt_tasks.once import run_once
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


def send_email(to: str, subject: str, body: str, message_id: str) -> bool:
    """Send one email; return False if this message id was already sent (a redelivered task)."""
    settings = get_settings()
    msg = build_message(to, subject, body, message_id, settings.mail_from)
    if not settings.email_send_once:
        deliver(msg, settings)
        return True
    return run_once(
        f"email:{message_id}",
        lambda: deliver(msg, settings),
        redis_url=settings.redis_url,
        # A little above one SMTP exchange at the full timeout: long enough not to expire mid-send.
        lease_s=settings.smtp_timeout_s * 2 + 5,
        socket_timeout_s=settings.redis_socket_timeout_s,
    )
