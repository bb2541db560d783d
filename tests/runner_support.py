"""Helpers shared by the per-runner tests: a worker environment, a worker process, the module's worker
fixture, and the checks every runner passes alike (every kind once, retries, SIGTERM, the broker down).

A runner's test module keeps only what is its own: its ``BrokerRunner`` (name, database, sizing), the
library-specific checks (what its wire format looks like, its queue configs), and its own faults.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient

from fbt_api.app import create_app
from fbt_bench.faults.model import FaultParams, FaultRun
from fbt_bench.faults.observe import deliveries
from fbt_devstack.processes import is_alive, kill_tree
from fbt_devstack.redis_server import RedisServer
from fbt_devstack.smtp_sink import wait_for_mail
from fbt_tasks import ledger
from fbt_tasks.backend import BrokerUnavailable
from fbt_tasks.jobs import Job
from fbt_tasks.registry import configure, load_runner
from fbt_tasks.settings import Settings

KEY = "test-key-not-a-secret"
AUTH = {"X-API-Key": KEY}


@dataclass
class WorkerEnv:
    """The environment a runner's worker and the test's API share (not a devstack Stack: nothing is started)."""

    settings: Settings
    env: dict[str, str]
    dir: Path
    mailbox: Path

    @property
    def ledger_file(self) -> Path:
        return self.dir / "ledger.jsonl"


def make_worker_env(
    backend: str, tmp: Path, redis_url: str, smtp: tuple[int, Path], **extra: str
) -> WorkerEnv:
    port, mailbox = smtp
    env = {
        "BACKEND": backend,
        "REDIS_URL": redis_url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),
        "LOG_FILE": str(tmp / "log.txt"),
        "LEDGER_FILE": str(tmp / "ledger.jsonl"),
        "MEDIA_DIR": str(tmp / "media"),
        "API_KEY": KEY,
        "WORKER_PROCESSES": "2",
        "WORKER_THREADS": "1",
        "QUEUE_CONFIG": "safe",
        **extra,
    }
    settings = configure(Settings(**{key.lower(): value for key, value in env.items()}))
    return WorkerEnv(settings, env, tmp, mailbox)


@contextmanager
def running_worker(
    worker_env: WorkerEnv, ready: Callable[[Settings], bool], what: str, timeout_s: float = 60
) -> Iterator[subprocess.Popen[bytes]]:
    """Start the runner's worker command; on exit SIGTERM it, and SIGKILL its whole tree if anything is left."""
    command = load_runner(worker_env.settings.backend).worker_command(worker_env.settings)
    assert command is not None, f"{worker_env.settings.backend} has no worker"
    script = str(Path(sys.executable).parent / command[0])
    with open(worker_env.dir / "worker.log", "ab") as log:
        proc = subprocess.Popen(
            [script, *command[1:]],
            env={**os.environ, **worker_env.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: ready(worker_env.settings), timeout_s, what, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        kill_tree(proc.pid)
        proc.wait(timeout=10)


def wait_until(
    condition: Callable[[], bool], timeout_s: float, what: str, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"worker exited with {proc.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.05)


def events_by_id(worker_env: WorkerEnv) -> dict[str, list[ledger.CompletionEvent]]:
    found: dict[str, list[ledger.CompletionEvent]] = {}
    for event in ledger.read_events(worker_env.ledger_file):
        found.setdefault(event.id, []).append(event)
    return found


def is_in_order(seen: list[str], order: list[str]) -> bool:
    """True if the distinct states seen never go backwards in ``order``."""
    ranks = [order.index(state) for state in seen]
    return ranks == sorted(ranks)


SMALL_RESIZE = {"width": 64, "height": 64, "target_width": 8, "target_height": 8}


def every_kind_until_succeeded(
    client: TestClient, backend: str
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Submit one job of each kind through the API and poll ``/jobs`` until all succeed.

    Returns the job id per kind and the distinct states each job was seen in, in order.
    """
    responses = {
        "write_log": client.post(f"/log/?msg=hello from {backend}", headers=AUTH),
        "send_email": client.post(f"/send-mail/?email={backend}@example.com", headers=AUTH),
        "notify": client.post("/notify/", headers=AUTH),
        "resize_image": client.post("/resize", json=SMALL_RESIZE, headers=AUTH),
    }
    assert {r.status_code for r in responses.values()} == {200}
    assert {r.json()["backend"] for r in responses.values()} == {backend}
    ids = {kind: r.json()["job_id"] for kind, r in responses.items()}
    seen: dict[str, list[str]] = {job_id: [] for job_id in ids.values()}

    def all_succeeded() -> bool:
        for job_id, states in seen.items():
            state = client.get(f"/jobs/{job_id}", headers=AUTH).json()["state"]
            if not states or states[-1] != state:
                states.append(state)
        return all(states[-1] == "succeeded" for states in seen.values())

    wait_until(all_succeeded, 60, "every job to succeed")
    assert client.get("/health").json() == {"status": "ok", "backend": backend, "broker": "up"}
    return ids, seen


STARTED_ORDER = ("queued", "started", "succeeded")


def assert_each_kind_ran_once(
    worker_env: WorkerEnv,
    ids: dict[str, str],
    seen: dict[str, list[str]],
    order: Sequence[str] = STARTED_ORDER,
) -> None:
    """What ``every_kind_until_succeeded`` returned: states never went backwards, one ok attempt per kind."""
    assert all(is_in_order(states, list(order)) for states in seen.values()), seen
    events = events_by_id(worker_env)
    for kind, job_id in ids.items():
        assert [(e.kind, e.ok, e.attempt) for e in events[job_id]] == [(kind, True, 1)]


# The kill-worker cell the exactly-once tests run (Redis and RabbitMQ alike): one slot and a 300 ms sink, so
# the kill lands inside a send by construction (Redis and RabbitMQ alike).
KILL_MID_SEND = FaultParams(
    n=30,
    fault_after=8,
    smtp_delay_ms=300,
    worker_processes=1,
    worker_threads=1,
    burst_concurrency=2,
    # The send-once lease is 2 x SMTP_TIMEOUT_S + 5 s: a redelivered email waits it out, so keep it short.
    smtp_timeout_s=3.0,
    # Only the broker runners run here; their API needs no more threads than the load sends at once.
    api_threadpool=4,
    trials=1,
)


# Databases of a test module's own Redis (conftest.redis_server): its module worker's, and the one for a
# test's own worker, which the module worker must not drain.
MODULE_DB, OWN_DB = 0, 1


def on_db(url: str, db: int) -> str:
    """The session Redis, another database: queues, heartbeats and results of a test module's own."""
    return f"{url.rsplit('/', 1)[0]}/{db}"


def every_kind_runs_once(worker_env: WorkerEnv, order: Sequence[str] = STARTED_ORDER) -> dict[str, str]:
    """Every kind through the API to whatever runs its tasks: states in ``order``, one ok attempt each, the
    email in the sink. Returns the job id per kind, for the runner's own checks of what it stored."""
    with TestClient(create_app(worker_env.settings)) as client:
        ids, seen = every_kind_until_succeeded(client, worker_env.settings.backend)
    assert_each_kind_ran_once(worker_env, ids, seen, order)
    mails = wait_for_mail(worker_env.mailbox, 1, timeout_s=10)
    assert f"<{ids['send_email']}@fbt.localhost>" in {m.message_id for m in mails}
    return ids


# A missing upload is a FileNotFoundError, an OSError: transient by fbt_tasks.retry, so retried.
MISSING_UPLOAD = {"source": "no-such-upload.png", "target_width": 8, "target_height": 8, "output": "x.jpg"}


def assert_retried_then_failed(events: list[ledger.CompletionEvent], attempts: int = 3) -> None:
    """The safe queue config's retries of MISSING_UPLOAD: ``attempts`` attempts, every one failed for it."""
    assert [e.attempt for e in events] == list(range(1, attempts + 1))
    assert not any(e.ok for e in events)
    assert all(e.error and e.error.startswith("FileNotFoundError") for e in events)


def assert_failed_once(events: list[ledger.CompletionEvent], error: str = "TypeError") -> None:
    """A permanent error: one attempt, final (the safe queue config retries transient errors only)."""
    assert [(e.attempt, e.ok) for e in events] == [(1, False)]
    assert events[0].error is not None and error in events[0].error


def slow_resize(output: str = "slow.jpg") -> Job:
    """About a second of CPU: long enough to still be running when a signal arrives."""
    return Job(kind="resize_image", payload={**SMALL_RESIZE, "width": 6000, "height": 4000, "output": output})


def sigterm_and_wait(worker: subprocess.Popen[bytes], timeout_s: float = 60) -> list[psutil.Process]:
    """SIGTERM the worker's root, as a supervisor would: it exits 0 and nothing of its tree (noted first, since
    a dead parent's children are re-parented) is left. Returns that tree."""
    root = psutil.Process(worker.pid)
    tree = [root, *root.children(recursive=True)]
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=timeout_s) == 0
    assert not [p.pid for p in tree if is_alive(p)]
    return tree


def assert_health_modules_pass(worker_env: WorkerEnv) -> None:
    """The runner's own healthcheck module and ``fbt_tasks.health`` (compose's healthchecks) see the worker."""
    for module in (f"fbt_{worker_env.settings.backend}.health", "fbt_tasks.health"):
        check = subprocess.run(
            [sys.executable, "-m", module], env=worker_env.env, capture_output=True, timeout=30, check=False
        )
        assert check.returncode == 0, (module, check.stdout + check.stderr)


@dataclass(frozen=True)
class BrokerRunner:
    """A broker runner's test module: what it changes in the setup every runner's tests share."""

    name: str
    # More variables for every environment of this module (fewer slots on a shared 2-core machine).
    sizing: Mapping[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 60.0

    def env(self, tmp: Path, redis_url: str, smtp: tuple[int, Path], **extra: str) -> WorkerEnv:
        return make_worker_env(self.name, tmp, redis_url, smtp, **{**self.sizing, **extra})

    def worker(self, worker_env: WorkerEnv) -> AbstractContextManager[subprocess.Popen[bytes]]:
        """The runner's worker command, running and ready by the plugin's own ``worker_ready``."""
        plugin = load_runner(self.name)
        what = f"a {plugin.display_name} worker to report ready"
        return running_worker(worker_env, plugin.worker_ready, what, self.ready_timeout_s)

    def ready(self, worker_env: WorkerEnv) -> bool:
        return load_runner(self.name).worker_ready(worker_env.settings)

    def broker_down(
        self,
        tmp: Path,
        smtp: tuple[int, Path],
        when_up: Callable[[httpx.Response, RedisServer], None] | None = None,
    ) -> None:
        """An API on a Redis of its own, stopped under it: 503 and nothing enqueued, health down, the worker check
        false; started again: accepted again. ``when_up`` looks at the first accepted job while Redis runs."""
        with RedisServer(workdir=tmp / "redis") as server:
            down = self.env(tmp, server.url, smtp)
            with TestClient(create_app(down.settings)) as client:
                accepted = client.post("/log/?msg=up", headers=AUTH)
                assert accepted.status_code == 200
                if when_up is not None:
                    when_up(accepted, server)
                server.stop()
                refused = client.post("/log/?msg=down", headers=AUTH)
                assert refused.status_code == 503
                assert refused.json()["detail"].startswith("Broker unavailable, nothing was enqueued")
                assert client.get(f"/jobs/{'0' * 32}", headers=AUTH).status_code == 503
                health = client.get("/health")
                assert health.status_code == 503 and health.json()["broker"] == "down"
                with pytest.raises(BrokerUnavailable):
                    client.app.state.backend.enqueue(Job(kind="write_log", payload={"message": "x"}))
                assert not self.ready(down)
                server.start()
                assert client.post("/log/?msg=back", headers=AUTH).status_code == 200


def module_worker(runner: BrokerRunner) -> Any:
    """The module's ``stack`` fixture (``stack = module_worker(RUNNER)``): one worker of ``runner``, safe queue
    config, on database MODULE_DB of the module's own Redis, for the whole module."""

    @pytest.fixture(scope="module", name="stack")
    def stack(
        tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, smtp_sink: tuple[int, Path]
    ) -> Iterator[WorkerEnv]:
        built = runner.env(
            tmp_path_factory.mktemp(runner.name), on_db(redis_server.url, MODULE_DB), smtp_sink
        )
        with runner.worker(built):
            yield built

    return stack


def assert_every_email_once(run: FaultRun) -> None:
    """What a kill-mid-send cell (KILL_MID_SEND) promises in the safe config: the kill cut a send short, yet
    nothing was lost, held or failed, every accepted email reached the sink exactly once, and the cut-off job
    ran again (at-least-once delivery brought it back; the send-once guard kept it to one email)."""
    record, copies = run.record, deliveries(run.mailbox)
    assert len(run.accepted) == KILL_MID_SEND.n, record["notes"]
    # The kill really interrupted a send: a lease of a cut-off attempt was left in Redis.
    assert record["in_flight_at_fault"] >= 1, record
    # The record's own split agrees: nothing lost, nothing still held in Redis, nothing in a failure store.
    assert (record["lost"], record["held"], record["failed"]) == (0, 0, 0), record
    assert record["duplicate_effects"] == 0 and record["duplicates"] == [], record
    lost = [job_id for job_id in run.accepted if copies[job_id] == 0]
    duplicated = {job_id: n for job_id, n in copies.items() if n > 1}
    assert not lost, f"{len(lost)} emails never arrived; {record}"
    assert not duplicated, f"emails delivered more than once {duplicated}; {record}"
    assert set(copies) == set(run.accepted)
    assert record["reexecuted"] >= 1, record
