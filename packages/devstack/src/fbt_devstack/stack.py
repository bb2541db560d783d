"""The whole topology in one object: Redis, RabbitMQ when BROKER=rabbitmq, the SMTP sink, the API, the workers.

``fbt-run``, the end-to-end tests and the benchmark harness all start it this way, so they measure and test
exactly what a developer runs. Commands come only from the console scripts (``fbt-api`` and the runner's
``worker_command``), the same ones compose calls; what the stack knows of a runner comes from its plugin
(``fbt_tasks.runner``), never from its name. Configuration travels only through the environment:
every ``Settings`` field is exported as its upper-case variable, which pydantic-settings reads back.

Ready means proven end to end: ``GET /health`` answers 200, then a warm-up job posted to ``/log/`` shows up
as completed in the ledger, which only happens once the API, the broker and a worker all work.
"""

import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from fbt_devstack import brokers, delay_proxy
from fbt_devstack.netns import Hosts
from fbt_devstack.ports import free_port, http_status
from fbt_devstack.processes import ProcessGroup, log_tail
from fbt_devstack.rabbitmq_server import RabbitMQServer
from fbt_devstack.redis_server import AppendFsync, RedisServer
from fbt_devstack.sink import start_sink
from fbt_devstack.stack_env import StackError, console_script, loopback_for, settings_env
from fbt_tasks.ledger import read_events
from fbt_tasks.registry import configure, load_runner
from fbt_tasks.runner import Runner
from fbt_tasks.settings import Settings

WARMUP_MESSAGE = "stack-warmup"
POLL_S = 0.1
# Between two worker readiness checks (the runner's worker_ready: a broker round trip or a broadcast ping).
HEALTH_POLL_S = 0.5
# The host (fbt_devstack.netns role) each process runs on; the SMTP sink stays in the root namespace.
ROLES = {"api": "api", "worker": "workers"}
WORKDIR_FILES = {"log_file": "log.txt", "ledger_file": "ledger.jsonl", "media_dir": "media"}


class Stack:
    """``with Stack(settings, workdir=tmp) as stack: stack.api_url`` — a running, proven-ready stack."""

    def __init__(
        self,
        settings: Settings,
        *,
        workdir: Path,
        start_redis: bool = True,
        start_rabbitmq: bool = True,
        start_smtp: bool = True,
        smtp_delay_ms: int = 0,
        redis_appendonly: bool = False,
        redis_appendfsync: AppendFsync = "everysec",
        extra_env: dict[str, str] | None = None,
        ready_timeout_s: float = 90.0,
        stop_timeout_s: float = 10.0,
        start_workers: bool = True,
        hosts: Hosts | None = None,
        link_impairment: delay_proxy.Impairment | None = None,
    ) -> None:
        # Checked against the installed runner before anything starts; BROKER defaults to the runner's first.
        settings = configure(settings)
        self.requested = settings
        self.runner: Runner = load_runner(settings.backend)
        self.workdir = Path(workdir).resolve()
        self.start_redis = start_redis
        self.start_rabbitmq = brokers.wants_private_rabbitmq(settings, start_rabbitmq)
        self.start_smtp = start_smtp
        self.smtp_delay_ms = smtp_delay_ms
        self.redis_appendonly = redis_appendonly
        self.redis_appendfsync: AppendFsync = redis_appendfsync
        self.extra_env = dict(extra_env or {})
        self.ready_timeout_s = ready_timeout_s
        self.stop_timeout_s = stop_timeout_s
        # False: start everything but the runner's workers (a queue to pre-fill); ``start_workers()`` later.
        self.with_workers = start_workers
        # Several hosts on one machine (fbt_devstack.netns): the API, Redis and the workers each in the
        # namespace of its role, the SMTP sink in the root one (the outside world) on the bridge's address.
        self.hosts = hosts
        # The loss and jitter ``impair_broker_link`` turns on, in the relay in front of Redis (hosts with the
        # "proxy" delay method only).
        self.link_impairment = link_impairment
        self.logs_dir = self.workdir / "logs"
        self.redis: RedisServer | None = None
        self.rabbitmq: RabbitMQServer | None = None
        self._settings: Settings | None = None
        self.warmup_job_ids: list[str] = []
        self._group = ProcessGroup()
        self._env: dict[str, str] = {}

    # -- what callers read -------------------------------------------------------------------------------

    @property
    def backend(self) -> str:
        return self.requested.backend

    @property
    def worker_name(self) -> str:
        """The process that runs tasks: the API itself when the runner runs them there."""
        return "api" if self.runner.runs_in_api else "worker"

    @property
    def settings(self) -> Settings:
        """The settings actually in force (real ports, URLs and paths); raises before ``start()``."""
        if self._settings is None:
            raise StackError("the stack has not been started")
        return self._settings

    @property
    def api_url(self) -> str:
        return f"http://{loopback_for(self.settings.host)}:{self.settings.port}"

    @property
    def redis_url(self) -> str:
        return self.settings.redis_url

    @property
    def api_key(self) -> str:
        return self.settings.effective_api_key

    @property
    def mailbox_path(self) -> Path:
        """Where the sink records mail; only meaningful when this stack started the sink."""
        return self.workdir / "mailbox.jsonl"

    @property
    def ledger_path(self) -> Path:
        return self.settings.ledger_file

    @property
    def log_path(self) -> Path:
        """The tasks' log file (write_log / notify), not a process log; those are in ``logs_dir``."""
        return self.settings.log_file

    @property
    def env(self) -> dict[str, str]:
        """The configuration every child gets (on top of this process's environment)."""
        return dict(self._env)

    def process_log(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def groups(self) -> dict[str, list[int]]:
        """PIDs per role for a resource sampler. In-process tasks run inside "api", so "workers" is empty."""
        return {
            "api": self._group.pids("api"),
            "workers": self._group.pids("worker"),
            "broker": [*brokers.broker_pids(self.redis, self.rabbitmq), *self._group.pids("delay")],
            "smtp": self._group.pids("smtp"),
        }

    def failed(self) -> dict[str, int]:
        """Children that died without being stopped, with their exit status (negative: by that signal)."""
        return {**self._group.exited(), **brokers.broker_exits(self.redis, self.rabbitmq)}

    # -- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> "Stack":
        if self._settings is not None:
            return self
        try:
            self._start_processes()
            self._wait_ready(time.monotonic() + self.ready_timeout_s)
        except BaseException:
            self.stop()
            self._settings = None  # so a later start() really starts
            raise
        return self

    def _start_processes(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        overrides: dict[str, object] = {}
        for field, filename in WORKDIR_FILES.items():
            given = getattr(self.requested, field)
            overrides[field] = (
                given.resolve() if field in self.requested.model_fields_set else self.workdir / filename
            )
        if self.start_redis:
            self.redis = RedisServer(
                workdir=self.workdir / "redis",
                appendonly=self.redis_appendonly,
                appendfsync=self.redis_appendfsync,
                log_path=self.process_log("redis"),
                bind=self._address("broker"),
                argv_prefix=self._prefix("broker"),
            ).start()
            overrides["redis_url"] = self._delayed(self.redis)
        if self.start_rabbitmq:
            # A private node under the work dir (never the system one on 5672).
            self.rabbitmq = brokers.start_rabbitmq(
                self.workdir / "rabbitmq", self._address("broker"), self._prefix("broker")
            )
            overrides["amqp_url"] = self.rabbitmq.url
        if self.start_smtp:
            overrides["smtp_host"] = self.hosts.gateway if self.hosts is not None else "127.0.0.1"
            overrides["smtp_port"] = self._start_smtp()
        if self.hosts is not None:
            overrides["host"] = self.hosts.address("api")
        overrides["port"] = self.requested.port or free_port()
        # PORT=0 means "pick a free one"; the API itself always gets a real port.
        self._settings = self.requested.model_copy(update=overrides)
        self._env = {**settings_env(self._settings), **self.extra_env}
        self._spawn("api", [console_script("fbt-api")])
        if self.with_workers:
            self._spawn_worker()

    def _spawn_worker(self) -> None:
        """Start the runner's own worker command, if it has one (tasks may run inside the API)."""
        command = self.runner.worker_command(self.settings)
        if command is not None:
            self._spawn("worker", [console_script(command[0]), *command[1:]])

    def _address(self, role: str) -> str:
        return self.hosts.address(role) if self.hosts is not None else "127.0.0.1"

    def _prefix(self, role: str) -> list[str]:
        return self.hosts.exec_prefix(role) if self.hosts is not None else []

    def _delayed(self, redis: RedisServer) -> str:
        """The URL clients get: Redis itself, or the delay proxy in front of it on the broker's host."""
        if self.hosts is None or self.hosts.delay_method != "proxy":
            return redis.url
        port = redis.port or 0
        return delay_proxy.start_in_front(
            self._group,
            self.hosts,
            port,
            self.process_log("delay"),
            self.ready_timeout_s,
            impairment=self.link_impairment,
        )

    def _start_smtp(self) -> int:
        try:
            sink = start_sink(
                self._group,
                self.mailbox_path,
                self.process_log("smtp"),
                delay_ms=self.smtp_delay_ms,
                host=self.hosts.gateway if self.hosts is not None else "127.0.0.1",
            )
        except TimeoutError as exc:
            log = self.process_log("smtp")
            raise StackError(f"the SMTP sink did not listen: {exc}; {log}:\n{log_tail(log)}") from exc
        return sink.port

    def _spawn(self, name: str, argv: list[str]) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self._env}
        prefix = self._prefix(ROLES[name]) if name in ROLES else []
        self._group.spawn(name, [*prefix, *argv], env=env, log_path=self.process_log(name))

    def _wait(self, ready: Callable[[], bool], what: str, blame: str, timeout_s: float) -> None:
        """Poll ``ready`` until true; fail at once if a child dies, or at the deadline with a log tail."""
        deadline = time.monotonic() + timeout_s
        while True:
            if dead := self.failed():
                name, code = next(iter(dead.items()))
                raise StackError(
                    f"{name} exited with status {code} while waiting for {what}; "
                    f"{self.process_log(name)}:\n{log_tail(self.process_log(name))}"
                )
            if ready():
                return
            if time.monotonic() >= deadline:
                raise StackError(
                    f"timed out after {timeout_s:.0f} s waiting for {what}; "
                    f"{self.process_log(blame)}:\n{log_tail(self.process_log(blame))}"
                )
            time.sleep(POLL_S)

    def _wait_ready(self, deadline: float) -> None:
        self._wait_healthy(deadline)
        if not self.with_workers and not self.runner.runs_in_api:
            return  # no worker to prove: the API answers, and jobs it accepts wait in the broker
        job_id = self._submit_probe(deadline)
        self._wait(
            lambda: self._ledger_says(job_id),
            f"the warm-up job {job_id} to complete (API -> broker -> worker -> ledger {self.ledger_path})",
            self.worker_name,
            max(deadline - time.monotonic(), 0.0),
        )

    def _wait_healthy(self, deadline: float) -> None:
        self._wait(
            lambda: http_status(f"{self.api_url}/health", timeout_s=2) == 200,
            f"GET {self.api_url}/health to answer 200",
            "api",
            max(deadline - time.monotonic(), 0.0),
        )

    def _submit_probe(self, deadline: float) -> str:
        accepted: list[str] = []

        def post() -> bool:
            request = urllib.request.Request(  # noqa: S310 - our own API on loopback
                f"{self.api_url}/log/?msg={WARMUP_MESSAGE}",
                method="POST",
                headers={"X-API-Key": self.api_key},
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                    accepted.append(json.loads(response.read())["job_id"])
                    return True
            except urllib.error.HTTPError as exc:
                if exc.code == 503:
                    return False  # the broker is not reachable yet; nothing was enqueued, so retry
                raise StackError(f"warm-up POST /log/ answered {exc.code}: {exc.read()[:500]!r}") from exc
            except OSError:
                return False

        self._wait(post, "POST /log/ to accept the warm-up job", "api", max(deadline - time.monotonic(), 0.0))
        self.warmup_job_ids.append(accepted[0])
        return accepted[0]

    def _ledger_says(self, job_id: str) -> bool:
        for event in read_events(self.ledger_path):
            if event.id == job_id:
                if not event.ok:
                    raise StackError(f"the warm-up job {job_id} failed in the worker: {event.error}")
                return True
        return False

    # -- faults and recovery ------------------------------------------------------------------------------

    def kill_workers(self, sig: int = signal.SIGKILL) -> None:
        """Signal the task runners (SIGKILL: the whole tree; else the root). For in-process: the API."""
        self._group.kill(self.worker_name, sig)

    def restart_workers(self) -> None:
        """Start the task runners again (stopping what is left of them first) and wait until they serve.

        No warm-up job here: after a crash the queue may hold a backlog, and a probe would wait behind it.
        Workers are ready when the runner's ``worker_ready`` (what ``python -m fbt_tasks.health`` runs) says so. Broker
        runners read heartbeats in Redis, so right after a SIGKILL the dead worker's last heartbeat may still
        count for their freshness window: measure recovery from the ledger, not from when this returns.
        """
        self._group.stop(self.worker_name, timeout_s=self.stop_timeout_s)
        if self.runner.runs_in_api:
            self._spawn("api", [console_script("fbt-api")])
            self._wait_healthy(time.monotonic() + self.ready_timeout_s)
            return
        self._spawn_worker()
        what = f"the {self.runner.display_name} worker to report ready"
        self._wait(self._worker_healthy, what, "worker", self.ready_timeout_s)

    def redeploy_api(self, grace_s: float) -> bool:
        """Replace the API process as a rolling deploy does: SIGTERM (uvicorn's graceful shutdown: in-flight
        requests, and BackgroundTasks run inside them, may finish), SIGKILL once ``grace_s`` has passed, then a
        new process on the same port, once it answers /health. Returns whether the old one exited by itself."""
        status = self._group.stop("api", timeout_s=grace_s)
        self._spawn("api", [console_script("fbt-api")])
        self._wait_healthy(time.monotonic() + self.ready_timeout_s)
        return status != -signal.SIGKILL

    def stop_workers(self) -> None:
        """Stop the runner's workers gracefully (a queue to pre-fill). Tasks that run in the API: a no-op."""
        if not self.runner.runs_in_api:
            self._group.stop("worker", timeout_s=self.stop_timeout_s)

    def start_workers(self) -> None:
        """Start the runner's workers on a stack started with ``start_workers=False`` and wait until they
        report ready (the runner's ``worker_ready``). Tasks that run in the API need no workers: a no-op."""
        if self.runner.runs_in_api or self._group.pids("worker"):
            return
        self._spawn_worker()
        what = f"the {self.runner.display_name} worker to report ready"
        self._wait(self._worker_healthy, what, "worker", self.ready_timeout_s)

    def _worker_healthy(self) -> bool:
        """The runner's own ``worker_ready`` (what ``python -m fbt_tasks.health`` answers), asked in this process.

        A fresh interpreter per poll would import the queue library each time, a second or more of CPU per
        poll on a busy 2-core machine, many times per restart; the answer is the same function's. A check
        that raises (the broker still coming back) is a "not yet".
        """
        try:
            ready = self.runner.worker_ready(self.settings)
        except Exception:
            ready = False
        time.sleep(0 if ready else HEALTH_POLL_S)
        return ready

    def stop_broker(self) -> None:
        """Stop the deployment's broker gracefully (RabbitMQ when BROKER=rabbitmq, else Redis); data survives."""
        brokers.stop_broker(self.redis, self.rabbitmq)

    def kill_broker(self) -> None:
        """Crash the deployment's broker (SIGKILL to its whole tree: Redis, or the RabbitMQ node's beam.smp)."""
        brokers.kill_broker(self.redis, self.rabbitmq)

    def cap_broker_memory(self, headroom_bytes: int) -> str:
        """Put the deployment's broker at its memory limit (``brokers.cap_broker_memory``); the limit in words."""
        return brokers.cap_broker_memory(self.redis, self.rabbitmq, headroom_bytes)

    def lift_broker_memory_cap(self) -> None:
        brokers.lift_broker_memory_cap(self.redis, self.rabbitmq)

    def impair_broker_link(self, on: bool) -> None:
        """Turn the broker link's loss and jitter (``link_impairment``) on or off."""
        pid = self._group.running_pid("delay")
        if pid is None or self.link_impairment is None:
            raise StackError(
                "no impairable link: start the stack on hosts with the proxy and a link_impairment"
            )
        os.kill(pid, signal.SIGUSR1 if on else signal.SIGUSR2)

    def start_broker(self) -> None:
        """Start the broker ``stop_broker`` stopped (or ``kill_broker`` killed), on the same ports and data."""
        brokers.start_broker(self.redis, self.rabbitmq)

    def restart_redis(self) -> None:
        """Stop and start the embedded Redis on the same port and data dir (data survives with appendonly)."""
        if self.redis is None:
            raise StackError("this stack uses an external Redis (start_redis=False); it cannot restart it")
        self.redis.restart()

    def stop(self) -> None:
        """Workers first (they finish in-hand jobs while the broker is still up), then API, SMTP, Redis."""
        for name in ("worker", "api", "smtp", "delay"):
            self._group.stop(name, timeout_s=self.stop_timeout_s)
        self._group.stop_all(timeout_s=self.stop_timeout_s)
        if self.rabbitmq is not None:
            self.rabbitmq.stop()
        if self.redis is not None:
            self.redis.stop()

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
