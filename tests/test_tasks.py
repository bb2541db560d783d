"""Unit tests for the shared tasks, against a real Redis and a real SMTP sink."""

import json
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from fbt_devstack.smtp_sink import read_mailbox
from fbt_tasks import ledger
from fbt_tasks.jobs import Job, run_job
from fbt_tasks.lines import MAX_LINE_BYTES, append_line, single_line
from fbt_tasks.mailer import send_email
from fbt_tasks.once import run_once


@given(st.text())
def test_any_text_becomes_exactly_one_bounded_line(text: str) -> None:
    line = single_line(text)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert b"\r" not in line
    assert len(line) <= MAX_LINE_BYTES
    line.decode("utf-8")


def test_newlines_cannot_forge_log_lines() -> None:
    assert single_line("ok\n2026-01-01 admin logged in") == b"ok\\n2026-01-01 admin logged in\n"


def _hammer(path: str, worker: int, per_thread: int) -> None:
    def write(thread: int) -> None:
        for i in range(per_thread):
            # Long lines make a torn or interleaved write visible.
            append_line(Path(path), f"{worker}:{thread}:{i}:" + "x" * 3000)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_concurrent_appends_from_processes_and_threads_stay_intact(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    with ProcessPoolExecutor(4) as pool:
        list(pool.map(_hammer, [str(path)] * 4, range(4), [100] * 4))
    lines = path.read_bytes().split(b"\n")[:-1]
    assert len(lines) == 4 * 4 * 100
    assert all(line.endswith(b"x" * 3000) for line in lines)
    assert len({line.split(b":x")[0] for line in lines}) == len(lines)


def test_ledger_round_trip_skips_garbage(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    event = ledger.CompletionEvent("a" * 32, "write_log", 1.0, 2.0, 3.5, 42, 1, True)
    ledger.record(path, event)
    append_line(path, "not json")
    assert list(ledger.read_events(path)) == [event]
    assert event.end_to_end_s == 2.5
    assert list(ledger.read_events(tmp_path / "missing.jsonl")) == []


def test_run_job_records_success_and_failure(task_env: Path) -> None:
    ok = Job(kind="write_log", payload={"message": "hello"})
    run_job(ok.to_message())
    bad = Job(
        kind="resize_image",
        payload={"output": "x.jpg", "target_width": 1, "target_height": 1, "source": "nope"},
    )
    with pytest.raises(FileNotFoundError):
        run_job(bad.to_message(), attempt=2)
    events = {e.id: e for e in ledger.read_events(task_env / "ledger.jsonl")}
    assert events[ok.id].ok and events[ok.id].kind == "write_log" and events[ok.id].attempt == 1
    assert (
        not events[bad.id].ok and events[bad.id].attempt == 2 and "FileNotFoundError" in events[bad.id].error
    )
    assert (task_env / "log.txt").read_text() == "hello\n"


def test_notify_names_the_user(task_env: Path) -> None:
    run_job(Job(kind="notify", payload={"user": "admin"}).to_message())
    assert (task_env / "log.txt").read_text() == "Notification sent to admin\n"


def test_send_email_delivers_once_per_message_id(task_env: Path, smtp_sink: tuple[int, Path]) -> None:
    _, mailbox = smtp_sink
    message_id = Job(kind="send_email", payload={}).id
    assert send_email("a@example.com", "Welcome!", "Thanks", message_id) is True
    # A redelivered task (same message id) must not send a second copy.
    assert send_email("a@example.com", "Welcome!", "Thanks", message_id) is False
    received = [m for m in read_mailbox(mailbox) if message_id in (m.message_id or "")]
    assert len(received) == 1
    assert received[0].to == ["a@example.com"] and received[0].subject == "Welcome!"


def test_a_dead_holders_lease_delays_but_never_drops(task_env: Path, redis_server) -> None:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    # A worker SIGKILLed mid-send leaves its lease behind and no "done" record.
    client.set("fbt:once:lease:dead-holder", "someone-else", px=600)
    ran = []
    assert run_once("dead-holder", lambda: ran.append(1), redis_url=redis_server.url, lease_s=2) is True
    assert ran == [1]
    assert run_once("dead-holder", lambda: ran.append(2), redis_url=redis_server.url, lease_s=2) is False
    assert ran == [1]


def test_a_failed_effect_releases_its_lease_and_records_nothing(task_env: Path, redis_server) -> None:
    def boom() -> None:
        raise ConnectionRefusedError("smtp down")

    with pytest.raises(ConnectionRefusedError):
        run_once("fails-first", boom, redis_url=redis_server.url, lease_s=30)
    # The retry runs at once: the failed attempt did not keep the lease.
    ran = []
    assert run_once("fails-first", lambda: ran.append(1), redis_url=redis_server.url, lease_s=30) is True
    assert ran == [1]


def test_resize_generated_and_uploaded_images(task_env: Path) -> None:
    out = run_job(
        Job(
            kind="resize_image",
            payload={
                "output": "gen.jpg",
                "width": 640,
                "height": 480,
                "target_width": 64,
                "target_height": 48,
            },
        ).to_message()
    )
    with Image.open(out) as image:
        assert image.size == (64, 48)
    source = task_env / "media" / "in" / "up.png"
    source.parent.mkdir(parents=True)
    Image.new("RGB", (300, 200), "red").save(source)
    out = run_job(
        Job(
            kind="resize_image",
            payload={"output": "up.jpg", "source": "in/up.png", "target_width": 30, "target_height": 20},
        ).to_message()
    )
    with Image.open(out) as image:
        assert image.size == (30, 20)


def test_job_message_is_plain_json() -> None:
    job = Job(kind="write_log", payload={"message": "m"})
    assert Job.from_message(json.loads(json.dumps(job.to_message()))) == job
