"""``send_email``: a real SMTP delivery with timeouts and a stable Message-ID."""

import smtplib
from email.message import EmailMessage
from email.utils import formatdate

from fbt_tasks.settings import get_settings


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


def send_email(to: str, subject: str, body: str, message_id: str) -> None:
    settings = get_settings()
    msg = build_message(to, subject, body, message_id, settings.mail_from)
    # timeout bounds connect and every read, so a stalled server frees the worker slot.
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_s) as smtp:
        smtp.send_message(msg)
