"""Append whole lines to a file that many processes and threads write at once.

One ``os.write`` on an ``O_APPEND`` descriptor is atomic with respect to other appenders on a local
filesystem, so a line written in a single call is never torn or interleaved. Lines are capped well
under PIPE_BUF (4096) so the guarantee also holds where the kernel only promises it up to that size.
"""

import os
from pathlib import Path

MAX_LINE_BYTES = 4000


def single_line(text: str, limit: int = MAX_LINE_BYTES) -> bytes:
    """Encode ``text`` as one newline-terminated line that cannot forge extra lines."""
    # Escape instead of dropping, so a forged "\n2024 admin logged in" stays visible as one line.
    cleaned = "".join(
        ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii") for ch in text
    )
    data = cleaned.encode("utf-8", errors="replace")
    if len(data) > limit - 1:
        data = data[: limit - 4].decode("utf-8", errors="ignore").encode("utf-8") + b"..."
    return data + b"\n"


def append_line(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, single_line(text))
    finally:
        os.close(fd)
