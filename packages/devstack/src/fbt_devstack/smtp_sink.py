"""A real SMTP server that accepts every message and records it as one JSON line in a mailbox file.

Tasks deliver over a real SMTP conversation (``smtplib``), so timeouts, connection limits and per-message
latency are real too. ``--delay-ms`` makes the sink answer like a hosted provider that takes that long per
message; each session sleeps on its own, so concurrent senders are delayed independently, not queued.
``--fail-first N`` makes it refuse the first N deliveries of each Message-ID with a temporary 451, like a
provider's transient failure, and ``--always-fail-to PREFIX`` refuses every delivery to recipients starting
with PREFIX: the fault benchmark's deterministic task errors (real SMTP refusals, no mocks).
"""

import asyncio
import contextlib
import json
import signal
import time
from dataclasses import asdict, dataclass
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Annotated

import typer
from aiosmtpd.smtp import SMTP, Envelope, Session

from fbt_tasks.lines import append_line

POLL_S = 0.05
# aiosmtpd would otherwise resolve the machine's FQDN at start, which can stall on a resolver.
SERVER_HOSTNAME = "fbt-smtp-sink"


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    to: list[str]
    mail_from: str
    subject: str
    message_id: str
    received_at: float
    size: int


# What --fail-first answers: a 4xx is temporary, so a sender is expected to try again later (RFC 5321 4.2.1).
REFUSAL = "451 4.3.0 Temporary failure, try again later (fbt-smtp-sink --fail-first)"


class MailboxHandler:
    """aiosmtpd handler: accept everything, append one line per message, optionally after a delay.

    With ``fail_first`` > 0 the first that many deliveries of each Message-ID are refused (nothing recorded);
    with ``always_fail_to`` set, every delivery to a recipient starting with it is refused.
    """

    def __init__(
        self, mailbox: Path, delay_s: float = 0.0, fail_first: int = 0, always_fail_to: str = ""
    ) -> None:
        self.mailbox = mailbox
        self.delay_s = delay_s
        self.fail_first = fail_first
        self.always_fail_to = always_fail_to
        self._refused: dict[str, int] = {}

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: ARG002 (aiosmtpd's handler signature)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        content = envelope.original_content or b""
        headers = BytesParser(policy=policy.default).parsebytes(content, headersonly=True)
        message_id = str(headers.get("message-id", ""))
        if self.always_fail_to and any(rcpt.startswith(self.always_fail_to) for rcpt in envelope.rcpt_tos):
            print(f"fbt-smtp-sink: refused {message_id} (--always-fail-to)", flush=True)
            return REFUSAL
        if self._refuse(message_id):
            print(f"fbt-smtp-sink: refused {message_id} (attempt {self._refused[message_id]})", flush=True)
            return REFUSAL
        mail = ReceivedMail(
            to=list(envelope.rcpt_tos),
            mail_from=envelope.mail_from or "",
            subject=str(headers.get("subject", "")),
            message_id=message_id,
            received_at=time.time(),
            size=len(content),
        )
        append_line(self.mailbox, json.dumps(asdict(mail), separators=(",", ":")))
        return "250 Message accepted for delivery"

    def _refuse(self, message_id: str) -> bool:
        """Count this delivery of ``message_id``; True while it is among the first ``fail_first``."""
        if self.fail_first <= 0:
            return False
        seen = self._refused.get(message_id, 0)
        if seen >= self.fail_first:
            return False
        self._refused[message_id] = seen + 1
        return True


def read_mailbox(path: Path) -> list[ReceivedMail]:
    """Every message received so far; a missing mailbox is an empty one, an unparsable line is skipped."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.readlines()
    except FileNotFoundError:
        return []
    mails = []
    for line in lines:
        try:
            mails.append(ReceivedMail(**json.loads(line)))
        except (ValueError, TypeError):
            continue
    return mails


def wait_for_mail(path: Path, count: int, timeout_s: float) -> list[ReceivedMail]:
    """Poll until the mailbox holds at least ``count`` messages; raise TimeoutError with what did arrive."""
    deadline = time.monotonic() + timeout_s
    while True:
        mails = read_mailbox(path)
        if len(mails) >= count:
            return mails
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{path}: {len(mails)} of {count} messages arrived within {timeout_s:.0f} s")
        time.sleep(POLL_S)


async def serve(
    host: str, port: int, mailbox: Path, delay_ms: int, fail_first: int = 0, always_fail_to: str = ""
) -> None:
    """Run until SIGTERM or SIGINT, then stop accepting and return."""
    loop = asyncio.get_running_loop()
    handler = MailboxHandler(mailbox, delay_ms / 1000, fail_first, always_fail_to)
    server = await loop.create_server(
        # SMTPUTF8 on, as real providers do, so internationalised addresses are accepted rather than refused.
        lambda: SMTP(handler, hostname=SERVER_HOSTNAME, enable_SMTPUTF8=True, loop=loop),
        host=host,
        port=port,
    )
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    delay = f", answering each message after {delay_ms} ms" if delay_ms else ""
    delay += f", refusing the first {fail_first} deliveries of each Message-ID" if fail_first else ""
    delay += f", refusing all mail to {always_fail_to}*" if always_fail_to else ""
    print(
        f"fbt-smtp-sink: SMTP on {host}:{port}{delay}; mail lands in {mailbox} (one JSON line each)",
        flush=True,
    )
    await stopping.wait()
    server.close()
    # Bounded, so a client holding a session open cannot delay shutdown.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(server.wait_closed(), timeout=2)
    print("fbt-smtp-sink: stopped", flush=True)


def cli(
    host: Annotated[
        str, typer.Option(help="Address to listen on. Keep it loopback: the sink accepts anything.")
    ] = ("127.0.0.1"),
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port to listen on.")] = 1025,
    mailbox: Annotated[
        Path, typer.Option(help="JSON-lines file each accepted message is appended to.", dir_okay=False)
    ] = Path("var/mailbox.jsonl"),
    delay_ms: Annotated[
        int,
        typer.Option(min=0, max=60_000, help="Per-message delay before accepting, like a hosted provider."),
    ] = 0,
    fail_first: Annotated[
        int,
        typer.Option(
            min=0, max=100, help="Refuse the first N deliveries of each Message-ID with a temporary 451."
        ),
    ] = 0,
    always_fail_to: Annotated[
        str, typer.Option(help="Refuse every delivery (451) to recipients starting with this prefix.")
    ] = "",
) -> None:
    """A development SMTP server: accepts every message and records to, from, subject and Message-ID.

    Point SMTP_HOST and SMTP_PORT at it; read what arrived with `fbt_devstack.smtp_sink.read_mailbox`.
    """
    asyncio.run(serve(host, port, mailbox, delay_ms, fail_first, always_fail_to))


def main() -> None:
    typer.run(cli)


if __name__ == "__main__":
    main()
