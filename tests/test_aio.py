"""The async twin of ``run_job`` (fbt_tasks.aio), against a real Redis and the real SMTP sink."""

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
import redis

from fbt_devstack.ports import free_port
from fbt_devstack.smtp_sink import read_mailbox
from fbt_tasks import ledger
from fbt_tasks.aio import ASYNC_TASKS, on_thread, run_job_async
from fbt_tasks.jobs import TASKS, Job, run_job
from fbt_tasks.once import run_once_async
from fbt_tasks.retry import is_transient
from fbt_tasks.settings import get_settings

RESIZE = {"output": "a.jpg", "width": 64, "height": 48, "target_width": 8, "target_height": 6}
PAYLOADS: dict[str, dict[str, Any]] = {
    "write_log": {"message": "hello"},
    "notify": {"user": "admin"},
    "resize_image": RESIZE,
    "send_email": {"to": "a@example.com", "subject": "Hi", "body": "b"},
}


def _job(kind: str) -> dict[str, Any]:
    job = Job(kind=kind, payload=dict(PAYLOADS[kind]))
    if kind == "send_email":
        job.payload["message_id"] = job.id
    return job.to_message()


def _events(task_env: Path) -> dict[str, list[ledger.CompletionEvent]]:
    found: dict[str, list[ledger.CompletionEvent]] = {}
    for event in ledger.read_events(task_env / "ledger.jsonl"):
        found.setdefault(event.id, []).append(event)
    return found


def _outcome(event: ledger.CompletionEvent) -> tuple[Any, ...]:
    """Everything an event says but when and where it ran."""
    return (event.kind, event.attempt, event.ok, event.error, event.skipped)


def test_every_kind_has_an_async_twin() -> None:
    assert set(ASYNC_TASKS) == set(TASKS)


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_the_async_twin_records_the_same_event_and_effect(task_env: Path, kind: str) -> None:
    sync, awaited = _job(kind), _job(kind)
    sync_result = run_job(sync, attempt=2)
    async_result = asyncio.run(run_job_async(awaited, attempt=2))
    events = _events(task_env)
    (sync_event,), (async_event,) = events[sync["id"]], events[awaited["id"]]
    assert _outcome(async_event) == _outcome(sync_event) == (kind, 2, True, None, False)
    assert async_event.enqueued_at == awaited["enqueued_at"]
    assert async_event.started_at <= async_event.finished_at
    if kind == "resize_image":
        assert sync_result == async_result  # the same output path, written twice
    else:
        assert async_result == sync_result
    if kind in ("write_log", "notify"):
        lines = (task_env / "log.txt").read_text().splitlines()
        assert lines[0] == lines[1]


def test_a_redelivery_is_skipped_whichever_path_sent_first(
    task_env: Path, smtp_sink: tuple[int, Path]
) -> None:
    _, mailbox = smtp_sink
    first = _job("send_email")
    assert run_job(first) is True
    # The guard's protocol is shared: the async twin finds the sync path's done record, and vice versa.
    assert asyncio.run(run_job_async(first, attempt=2)) is False
    second = _job("send_email")
    assert asyncio.run(run_job_async(second)) is True
    assert run_job(second, attempt=2) is False
    assert asyncio.run(run_job_async(second, attempt=3)) is False
    for message in (first, second):
        events = _events(task_env)[message["id"]]
        assert [(e.ok, e.skipped) for e in events] == [(True, False)] + [(True, True)] * (len(events) - 1)
        received = [m for m in read_mailbox(mailbox) if message["id"] in (m.message_id or "")]
        assert len(received) == 1


def test_a_dead_holders_lease_delays_but_never_drops(task_env: Path, redis_server) -> None:
    redis.Redis.from_url(redis_server.url).set("fbt:once:lease:async-dead-holder", "someone", px=600)
    ran: list[int] = []

    async def effect() -> None:
        ran.append(1)

    async def twice() -> tuple[bool, bool]:
        once = {"redis_url": redis_server.url, "lease_s": 2}
        return await run_once_async("async-dead-holder", effect, **once), await run_once_async(
            "async-dead-holder", effect, **once
        )

    assert asyncio.run(twice()) == (True, False)
    assert ran == [1]


def test_a_cancelled_send_leaves_its_lease_to_expire_and_the_retry_sends(
    task_env: Path, redis_server
) -> None:
    """A runner's job timeout cancels the task mid-send: the guard sends no more commands, and the next
    attempt waits out the lease rather than skipping (nothing was recorded as done)."""
    started = asyncio.Event()

    async def hangs() -> None:
        started.set()
        await asyncio.Event().wait()

    async def cancelled_then_retried() -> bool:
        once = {"redis_url": redis_server.url, "lease_s": 1}
        attempt = asyncio.create_task(run_once_async("cancelled-mid-send", hangs, **once))
        await started.wait()
        attempt.cancel()
        with pytest.raises(asyncio.CancelledError):
            await attempt
        return await run_once_async("cancelled-mid-send", started.wait, **once)

    assert asyncio.run(cancelled_then_retried()) is True


def test_an_smtp_outage_propagates_as_transient_and_the_retry_sends(
    task_env: Path, monkeypatch: pytest.MonkeyPatch, smtp_sink: tuple[int, Path]
) -> None:
    message = _job("send_email")
    monkeypatch.setenv("SMTP_PORT", str(free_port()))  # nothing listens there
    get_settings.cache_clear()
    with pytest.raises(Exception) as caught:
        asyncio.run(run_job_async(message))
    assert is_transient(caught.value), repr(caught.value)
    (event,) = _events(task_env)[message["id"]]
    assert not event.ok and event.error and event.error.startswith(type(caught.value).__name__)
    monkeypatch.setenv("SMTP_PORT", str(smtp_sink[0]))
    get_settings.cache_clear()
    assert asyncio.run(run_job_async(message, attempt=2)) is True
    assert [(e.attempt, e.ok) for e in _events(task_env)[message["id"]]] == [(1, False), (2, True)]


def test_a_redis_outage_propagates_as_transient(task_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    message = _job("send_email")
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    get_settings.cache_clear()
    with pytest.raises(redis.ConnectionError) as caught:
        asyncio.run(run_job_async(message))
    assert is_transient(caught.value)
    assert [e.ok for e in _events(task_env)[message["id"]]] == [False]


def test_a_permanent_error_fails_the_attempt_without_a_retry_hint(task_env: Path) -> None:
    message = Job(kind="resize_image", payload={**RESIZE, "source": "missing.png"}).to_message()
    with pytest.raises(FileNotFoundError):
        asyncio.run(run_job_async(message, attempt=3))
    (event,) = _events(task_env)[message["id"]]
    assert (event.ok, event.attempt) == (False, 3) and event.error.startswith("FileNotFoundError")


def test_resize_runs_off_the_loop_thread() -> None:
    async def where() -> tuple[int, int]:
        return threading.get_ident(), await on_thread(threading.get_ident)()

    loop_thread, task_thread = asyncio.run(where())
    assert loop_thread != task_thread
