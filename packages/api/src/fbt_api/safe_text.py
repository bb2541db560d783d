"""Which characters user text may carry, decided by where fbt_tasks puts that text.

The decision, per destination (mailer.build_message, logfile.write_log, lines.single_line, images.resize_image):

- Mail headers are REFUSED with 422 when they hold a control character (CR, LF, NUL, TAB, ESC, DEL, C1 such as
  NEL), a Unicode line or paragraph separator, or a lone surrogate. They are ``email`` (To) and ``subject``
  (Subject); From, Date and Message-ID are the server's own. The email package refuses line breaks only when the
  worker builds the message, long after the API answered 200, and passes NUL onto the wire; escaping instead
  would quietly mail a different subject or address than the client sent. Refusing up front is the only answer
  that keeps the API's promise that an accepted job can run.
- Log lines are ESCAPED, not refused: ``msg`` (and notify's user, which is the server's) goes through
  lines.single_line, which writes every non-printable character as its visible escape. A hostile message stays
  one honest line, and the log still records what the client actually sent, which is what a log is for.
- The mail body is multi-line by nature, so CR and LF stay; only what can never be sent is refused: NUL (RFC 5322
  forbids it anywhere in a message) and lone surrogates (not encodable as UTF-8, so the worker would fail).
- File paths: none come from the client. An upload is stored as in/<uuid> and every output is <uuid>.jpg; the
  upload's filename is never read, so there is nothing to validate there.
"""

import unicodedata
from collections.abc import Callable

# Unicode categories that break a header line or cannot be encoded: Cc (C0, DEL, C1), Cs (lone surrogates),
# Zl and Zp (U+2028, U+2029: str.splitlines, and so the email package, treats them as line breaks).
HEADER_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
NAMES = {"\r": "CR", "\n": "LF", "\x00": "NUL", "\t": "TAB", "\x1b": "ESC", "\x7f": "DEL"}


def describe(ch: str) -> str:
    """'CR (U+000D)': a character a client can recognise in the error message."""
    fallback = "lone surrogate" if unicodedata.category(ch) == "Cs" else "control character"
    name = NAMES.get(ch) or unicodedata.name(ch, "") or fallback
    return f"{name} (U+{ord(ch):04X})"


def _in_header(ch: str) -> bool:
    return unicodedata.category(ch) not in HEADER_FORBIDDEN_CATEGORIES


def _in_body(ch: str) -> bool:
    return ch != "\x00" and unicodedata.category(ch) != "Cs"


def _refuse_first(value: str, allowed: Callable[[str], bool], why: str) -> str:
    for index, ch in enumerate(value):
        if not allowed(ch):
            raise ValueError(f"must not contain {describe(ch)}, found at position {index}: {why}")
    return value


def header_value(value: object) -> object:
    """Before-validator for text that becomes a mail header; runs before whitespace is stripped."""
    if isinstance(value, str):
        _refuse_first(value, _in_header, "it becomes a mail header, which must be one line of printable text")
    return value


def mail_body(value: object) -> object:
    """Before-validator for the mail body: line breaks are fine, NUL and lone surrogates cannot be sent."""
    if isinstance(value, str):
        _refuse_first(value, _in_body, "it cannot be sent in an email")
    return value
