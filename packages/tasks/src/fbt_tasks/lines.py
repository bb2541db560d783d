"""Append whole lines to a file that many processes and threads write at once.

One ``os.write`` on an ``O_APPEND`` descriptor is atomic with respect to other appenders on a local
filesystem, so a line written in a single call is never torn or interleaved. Lines are capped well
under PIPE_BUF (4096) so the guarantee also holds where the kernel only promises it up to that size.
"""

import os

MAX_LINE_BYTES = 4000
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT


def _escaped(text: str) -> str:
    # Escape instead of dropping, so a forged "\n2024 admin logged in" stays visible as one line.
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def single_line(text: str, limit: int = MAX_LINE_BYTES) -> bytes:
    """Encode ``text`` as one newline-terminated line that cannot forge extra lines."""
    # str.isprintable() is False exactly when some character needs escaping (line breaks, controls, separators,
    # lone surrogates), so the common all-printable line skips the per-character loop.
    cleaned = text if text.isprintable() else _escaped(text)
    # Lone surrogates are not printable, so they were escaped: what is left always encodes.
    data = cleaned.encode()
    if len(data) > limit - 1:
        data = data[: limit - 4].decode("utf-8", errors="ignore").encode("utf-8") + b"..."
    return data + b"\n"


def append_line(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` as one line in a single O_APPEND write; the file and its directory are created if missing."""
    line = single_line(text)
    try:
        fd = os.open(path, _APPEND, 0o644)
    except FileNotFoundError:
        # Only the first write to a fresh directory gets here; a mkdir on every append would cost more than the write.
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        fd = os.open(path, _APPEND, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
