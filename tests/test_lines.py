"""The worker's hot path (issue #9) writes exactly what the straightforward implementation wrote.

``single_line`` skips its per-character loop when the text is all printable, ``append_line`` only creates
directories when the open fails, and ``run_job`` writes its ledger line without building a CompletionEvent.
Each is compared here with the earlier, obviously-correct form. No timings: scripts/hotpath.py measures those.
"""

import os
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from fbt_tasks import ledger
from fbt_tasks.jobs import Job, run_job
from fbt_tasks.lines import MAX_LINE_BYTES, append_line, single_line
from fbt_tasks.settings import get_settings


def reference_single_line(text: str, limit: int = MAX_LINE_BYTES) -> bytes:
    """single_line as it was before the fast path: every character through the escaping test."""
    cleaned = "".join(
        ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii") for ch in text
    )
    data = cleaned.encode("utf-8", errors="replace")
    if len(data) > limit - 1:
        data = data[: limit - 4].decode("utf-8", errors="ignore").encode("utf-8") + b"..."
    return data + b"\n"


# Printable text, every kind of character that must be escaped, and lengths on both sides of the cap.
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=3000) | st.text(max_size=5000)
ESCAPED = st.sampled_from(
    ["\n", "\r", "\x00", "\t", "\x1b", "\x7f", "\x85", "\u2028", "\u2029", "\ud800", "\udfff"]
)
NON_PRINTABLE = st.text(
    st.characters(categories=["Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"]), max_size=5
)
MIXED = st.lists(st.text(max_size=20) | ESCAPED | NON_PRINTABLE, max_size=400).map("".join)


@given(ANY_TEXT | MIXED, st.sampled_from([MAX_LINE_BYTES, 64, 5]))
@example("", MAX_LINE_BYTES)
@example("plain printable text", MAX_LINE_BYTES)
@example("forged\n2026-01-01 admin logged in\r\x1b[2J", MAX_LINE_BYTES)
@example("é" * 3000, MAX_LINE_BYTES)  # over-long, cut inside a two-byte character
@example("x" * 3999, MAX_LINE_BYTES)  # one byte over: the newline does not fit
@example("x" * 3998, MAX_LINE_BYTES)  # exactly fits
@example("\n" * 2000, MAX_LINE_BYTES)  # short text that only the escapes make over-long
@example("🎉" * 1001, MAX_LINE_BYTES)
@example("lone \ud800 surrogate", MAX_LINE_BYTES)
def test_single_line_is_byte_identical_to_the_character_loop(text: str, limit: int) -> None:
    assert single_line(text, limit) == reference_single_line(text, limit)


def test_append_line_creates_missing_directories_then_appends(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "log.txt"
    append_line(path, "one")
    append_line(str(path), "two\nforged")
    assert path.read_bytes() == b"one\ntwo\\nforged\n"
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644 & ~_umask())


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def test_run_job_writes_the_same_ledger_line_as_record(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LOG_FILE", str(tmp_path / "log.txt"))
    monkeypatch.setenv("LEDGER_FILE", str(tmp_path / "ledger.jsonl"))
    get_settings.cache_clear()
    try:
        job = Job(kind="write_log", payload={"message": "hello"})
        run_job(job.to_message(), attempt=3)
    finally:
        get_settings.cache_clear()
    line = (tmp_path / "ledger.jsonl").read_bytes()
    [event] = ledger.read_events(tmp_path / "ledger.jsonl")
    assert (event.id, event.kind, event.enqueued_at, event.attempt, event.ok, event.error) == (
        job.id,
        "write_log",
        job.enqueued_at,
        3,
        True,
        None,
    )
    assert event.pid == os.getpid() and event.enqueued_at <= event.started_at <= event.finished_at
    ledger.record(tmp_path / "again.jsonl", event)
    assert (tmp_path / "again.jsonl").read_bytes() == line
