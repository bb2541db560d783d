"""The async in-process runner: BackgroundTasks awaiting ``run_job_async`` on the API's event loop, against a
real Redis and the real SMTP sink; once through TestClient, once over real HTTP to a uvicorn the Stack runs."""

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from runner_support import (
    MISSING_UPLOAD,
    WorkerEnv,
    events_by_id,
    every_kind_runs_once,
    make_worker_env,
    wait_until,
)

from fbt_devstack.processes import all_alive, descendants_of_self
from fbt_devstack.redis_server import RedisServer
from fbt_devstack.smtp_sink import wait_for_mail
from fbt_devstack.stack import Stack
from fbt_inprocess_async.backend import InProcessAsyncBackend
from fbt_tasks import ledger
from fbt_tasks.jobs import Job, JobState
from fbt_tasks.registry import load_runner
from fbt_tasks.settings import Settings, get_settings

NAME = "inprocess-async"
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.fixture
def stack(
    tmp_path: Path, redis_server: RedisServer, smtp_sink: tuple[int, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[WorkerEnv]:
    """The settings of an API with this runner (two task slots), in this process's environment too: the tasks
    run here and read it (fbt_tasks.settings.get_settings). Nothing is started."""
    built = make_worker_env(NAME, tmp_path, redis_server.url, smtp_sink)
    for key, value in built.env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield built
    get_settings.cache_clear()


def test_every_kind_runs_on_the_loop_and_its_state_progresses_to_succeeded(stack: WorkerEnv) -> None:
    every_kind_runs_once(stack)
    assert (stack.dir / "log.txt").read_text().splitlines()[:2] == [
        f"hello from {NAME}",
        "Notification sent to admin",
    ]


class Collected:
    """A BackgroundTasks stand-in that keeps what the backend schedules, to await it on a loop of our own."""

    def __init__(self) -> None:
        self.calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def add_task(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.calls.append((func, args))


def _most_at_once(events: list[ledger.CompletionEvent]) -> int:
    edges = sorted([(e.started_at, 1) for e in events] + [(e.finished_at, -1) for e in events])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def test_no_more_tasks_run_at_once_than_the_slot_budget(stack: WorkerEnv) -> None:
    assert stack.settings.slots == 2
    backend = InProcessAsyncBackend(stack.settings)
    background = Collected()
    jobs = [Job(kind="send_email", payload={}) for _ in range(6)]
    for job in jobs:
        job.payload.update(to="slots@example.com", subject="s", body="b", message_id=job.id)
        backend.for_request(background).enqueue(job)
    assert {backend.status(job.id) for job in jobs} == {JobState.queued}

    async def run_all() -> None:
        await asyncio.gather(*(func(*args) for func, args in background.calls))

    asyncio.run(run_all())
    assert {backend.status(job.id) for job in jobs} == {JobState.succeeded}
    events = [e for job in jobs for e in events_by_id(stack)[job.id]]
    # Each send awaits SMTP, so the loop starts the next task meanwhile: two overlap, the semaphore stops a third.
    assert len(events) == 6 and _most_at_once(events) == 2


def test_a_failing_task_is_logged_and_not_retried(stack: WorkerEnv, caplog: pytest.LogCaptureFixture) -> None:
    backend = InProcessAsyncBackend(stack.settings)
    background = Collected()
    job = Job(kind="resize_image", payload=MISSING_UPLOAD)
    backend.for_request(background).enqueue(job)
    [(func, args)] = background.calls
    asyncio.run(func(*args))
    assert backend.status(job.id) == JobState.failed
    assert [(e.ok, e.attempt) for e in events_by_id(stack)[job.id]] == [(False, 1)]
    assert f"background task {job.id} failed" in caplog.text
    with pytest.raises(ValueError, match="cannot delay"):
        backend.for_request(background).enqueue(job, delay_s=1.0)


def test_the_tutorial_routes_over_http_and_a_clean_stop(tmp_path: Path) -> None:
    before = {proc.pid for proc in descendants_of_self()}
    stack = Stack(Settings(_env_file=None, backend=NAME, port=0), workdir=tmp_path)
    with stack:
        assert load_runner(NAME).worker_ready(stack.settings)
        pids = [pid for group in stack.groups().values() for pid in group]
        assert stack.groups()["workers"] == []
        headers = {"X-API-Key": str(stack.api_key)}

        def post(path: str, **params: str) -> str:
            response = httpx.post(f"{stack.api_url}{path}", params=params, headers=headers, timeout=10)
            assert response.status_code == 200, response.text
            assert response.json()["backend"] == NAME
            return str(response.json()["job_id"])

        ids = [
            post("/log/", msg="over http"),
            post("/send-mail/", email="http@example.com"),
            post("/notify/"),
        ]
        path = Path(stack.ledger_path)
        wait_until(lambda: set(ids) <= {e.id for e in ledger.read_events(path) if e.ok}, 30, "the three jobs")
        mails = wait_for_mail(stack.mailbox_path, 1, timeout_s=30)
        assert f"<{ids[1]}@fbt.localhost>" in {m.message_id for m in mails}
    assert all_alive(pids) == []
    assert [proc for proc in descendants_of_self() if proc.pid not in before] == []
