"""A deployment split across hosts the way a user runs one: the broker on one host, ``make worker`` on a second,
``make api`` on a third (docs/deploy.md, "Workers on other hosts"), for the harness's external mode to measure.

Three network namespaces (``fbt_devstack.netns``): our Redis in "broker", ``fbt-worker`` (what ``make worker``
runs for BACKEND) in "workers", ``fbt-api`` (what ``make api`` runs) in "api"; the SMTP sink stays in the root
namespace, the outside world's mail provider, on the bridge's address. Unlike the ``Stack``, which hands every
child every Settings field, each process gets only what a user would set on that host: BACKEND, REDIS_URL and
SMTP_HOST/SMTP_PORT naming the other hosts' addresses, where its files go (LEDGER_FILE, LOG_FILE, MEDIA_DIR), the
API its key and bind address, and the sizing the caller passes (WORKER_PROCESSES, QUEUE_CONFIG, ...). None of
the caller's own Settings variables is inherited, and each process starts in a directory of its own, so no
``.env`` is read behind its back.

Namespaces separate the network only: the workers append to LEDGER_FILE and the harness reads it on the one
filesystem they share, as the compose bench reads the ledger on a shared volume. Across real hosts that file
needs shared storage, so this proves the network path (API -> broker <- workers, mail out), not a remote ledger.

``python -m fbt_devstack.split --backend NAME [--rtt-ms 1] [-- COMMAND ...]`` (root) starts one, prints the
external-mode variables and runs COMMAND with them (``fbt-bench compare --profile quick``) or waits for Ctrl-C;
everything it made is removed afterwards, on success, error, Ctrl-C and SIGTERM alike.
"""

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fbt_devstack import delay_proxy, netns
from fbt_devstack.ports import http_status
from fbt_devstack.processes import ProcessGroup, log_tail, sigint_deferred
from fbt_devstack.redis_server import RedisServer
from fbt_devstack.sink import start_sink
from fbt_devstack.stack_env import StackError, console_script, external_url_var
from fbt_tasks.registry import configure, load_runner
from fbt_tasks.settings import Settings

ROLES = ("api", "broker", "workers")
# The api namespace is this deployment's alone, so make api's default port is free there.
API_PORT = 8000
POLL_S = 0.25
STOP_TIMEOUT_S = 10.0
# No variable of the caller's configures a host's process: only what a user would give it there.
SETTINGS_VARS = frozenset(name.upper() for name in Settings.model_fields)
# A runner's own variables (RQ_WORKER_MODE) are no Settings field, so every host inherits them as they are.
PASSED_ON = ("WORKER_PROCESSES", "WORKER_THREADS", "QUEUE_CONFIG", "API_THREADPOOL")


@dataclass
class SplitDeployment:
    """The running deployment: where the load generator reaches it, and which processes run on which host."""

    backend: str
    hosts: netns.Hosts
    workdir: Path
    # The API's variables (the workers get the same but HOST, PORT and API_KEY): the deployment as configured.
    api_vars: dict[str, str]
    group: ProcessGroup
    redis: RedisServer
    # Why the last readiness check said "not yet": a deadline's error names it instead of only timing out.
    not_ready_because: str = ""

    @property
    def api_url(self) -> str:
        return f"http://{self.api_vars['HOST']}:{self.api_vars['PORT']}"

    @property
    def redis_url(self) -> str:
        return self.api_vars["REDIS_URL"]

    @property
    def ledger_path(self) -> Path:
        return Path(self.api_vars["LEDGER_FILE"])

    @property
    def api_key(self) -> str:
        return self.api_vars["API_KEY"]

    @property
    def settings(self) -> Settings:
        """The API's settings and nothing else (no environment, no ``.env``), as its host reads them."""
        return configure(
            Settings.model_validate({name.lower(): value for name, value in self.api_vars.items()})
        )

    def external_env(self) -> dict[str, str]:
        """What the harness's external mode needs to measure this deployment (``fbt_bench.topology``)."""
        return {
            external_url_var(self.backend): self.api_url,
            "REDIS_URL": self.redis_url,
            "LEDGER_FILE": str(self.ledger_path),
            "API_KEY": self.api_key,
        }

    def pids(self, role: str) -> list[int]:
        """The processes this deployment started on ``role``'s host (api, workers, broker), trees included."""
        if role == "broker":
            return [pid for pid in (self.redis.pid, *self.group.pids("delay")) if pid is not None]
        return self.group.pids({"api": "api", "workers": "worker"}[role])

    def process_log(self, name: str) -> Path:
        return self.workdir / "logs" / f"{name}.log"


def _host_env(own: Mapping[str, str]) -> dict[str, str]:
    inherited = {name: value for name, value in os.environ.items() if name not in SETTINGS_VARS}
    return {**inherited, "PYTHONUNBUFFERED": "1", **own}


def _until(ready: Callable[[], bool], what: str, deployment: SplitDeployment, deadline: float) -> None:
    """Poll ``ready``; fail at once if a process died, or at the deadline, with the log tail that explains it."""
    while not ready():
        if dead := {
            **deployment.group.exited(),
            **({"redis": c} if (c := deployment.redis.returncode) else {}),
        }:
            name, code = next(iter(dead.items()))
            log = deployment.process_log(name)
            raise StackError(
                f"{name} exited with status {code} while waiting for {what}; {log}:\n{log_tail(log)}"
            )
        if time.monotonic() >= deadline:
            because = f" (last check: {deployment.not_ready_because})" if deployment.not_ready_because else ""
            raise StackError(f"timed out waiting for {what}{because}; logs in {deployment.workdir / 'logs'}")
        time.sleep(POLL_S)


def _worker_ready(deployment: SplitDeployment) -> bool:
    # The runner's own readiness (what `python -m fbt_tasks.health` answers), asked across the bridge.
    try:
        return load_runner(deployment.backend).worker_ready(deployment.settings)
    except Exception as exc:
        deployment.not_ready_because = f"{type(exc).__name__}: {exc}"
        return False


def _start(
    deployment: SplitDeployment, extra: Mapping[str, str], smtp_delay_ms: int, ready_timeout_s: float
) -> None:
    deadline = time.monotonic() + ready_timeout_s
    made, workdir = deployment.hosts, deployment.workdir
    deployment.redis.start()
    redis_url = deployment.redis.url
    if made.rtt_ms > 0 and made.delay_method == "proxy":
        port = deployment.redis.port or 0
        redis_url = delay_proxy.start_in_front(
            deployment.group, made, port, deployment.process_log("delay"), ready_timeout_s
        )
    sink = start_sink(
        deployment.group,
        workdir / "mailbox.jsonl",
        deployment.process_log("smtp"),
        delay_ms=smtp_delay_ms,
        host=made.gateway,
    )
    # What a user sets on each host (docs/deploy.md): the broker's and the mail server's addresses, the files.
    host_vars = {
        "BACKEND": deployment.backend,
        "REDIS_URL": redis_url,
        "SMTP_HOST": sink.host,
        "SMTP_PORT": str(sink.port),
        "LEDGER_FILE": str(workdir / "ledger.jsonl"),
        "LOG_FILE": str(workdir / "log.txt"),
        "MEDIA_DIR": str(workdir / "media"),
        **extra,
    }
    # The API refuses a non-loopback bind with the development key, as it would on a real host.
    api_key = extra.get("API_KEY") or secrets.token_hex(16)
    deployment.api_vars = {
        **host_vars,
        "API_KEY": api_key,
        "HOST": made.address("api"),
        "PORT": str(API_PORT),
    }
    starts = [("api", "api", "fbt-api", deployment.api_vars)]
    if not load_runner(deployment.backend).runs_in_api:
        starts.append(("worker", "workers", "fbt-worker", host_vars))
    for name, role, script, own in starts:
        cwd = workdir / role
        cwd.mkdir(parents=True, exist_ok=True)
        argv = [*made.exec_prefix(role), console_script(script)]
        deployment.group.spawn(name, argv, env=_host_env(own), log_path=deployment.process_log(name), cwd=cwd)
    health = f"{deployment.api_url}/health"
    _until(
        lambda: http_status(health, timeout_s=2) == 200, f"GET {health} to answer 200", deployment, deadline
    )
    if len(starts) > 1:
        _until(lambda: _worker_ready(deployment), "the workers to report ready", deployment, deadline)


@contextmanager
def split_deployment(
    backend: str,
    workdir: Path,
    *,
    rtt_ms: float = 0.0,
    extra: Mapping[str, str] | None = None,
    smtp_delay_ms: int = 0,
    ready_timeout_s: float = 90.0,
) -> Iterator[SplitDeployment]:
    """``backend``'s API, workers and Redis each on a host of its own, ready; ``extra`` holds more of a user's
    settings (WORKER_PROCESSES, QUEUE_CONFIG, ...) for both. Namespaces, links and processes are gone after."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    with netns.hosts(ROLES, rtt_ms) as made:
        deployment = SplitDeployment(
            backend=backend,
            hosts=made,
            workdir=workdir,
            api_vars={},
            group=ProcessGroup(),
            redis=RedisServer(
                workdir=workdir / "broker",
                log_path=workdir / "logs" / "redis.log",
                bind=made.address("broker"),
                argv_prefix=made.exec_prefix("broker"),
            ),
        )
        try:
            _start(deployment, dict(extra or {}), smtp_delay_ms, ready_timeout_s)
            yield deployment
        finally:
            with sigint_deferred():
                # Workers first, so they finish the jobs in hand while the broker still answers.
                for name in ("worker", "api", "smtp", "delay"):
                    deployment.group.stop(name, timeout_s=STOP_TIMEOUT_S)
                deployment.group.stop_all(timeout_s=STOP_TIMEOUT_S)
                deployment.redis.stop()


def _run(command: Sequence[str], env: Mapping[str, str]) -> int:
    child = subprocess.Popen(list(command), env={**os.environ, **env})
    try:
        return child.wait()
    except KeyboardInterrupt:
        # The terminal's Ctrl-C reached the command too: let it finish its own teardown first.
        child.wait()
        raise
    except BaseException:
        child.send_signal(signal.SIGTERM)
        child.wait()
        raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fbt_devstack.split",
        description="Redis, fbt-worker and fbt-api each in a network namespace of its own (root only); prints the "
        "harness's external-mode variables and runs COMMAND with them, or waits for Ctrl-C.",
    )
    parser.add_argument(
        "--backend",
        default=os.environ.get("BACKEND"),
        required="BACKEND" not in os.environ,
        help="the runner (BACKEND)",
    )
    parser.add_argument("--workdir", type=Path, default=Path("var/split"), help="ledger, logs, Redis data")
    parser.add_argument("--rtt-ms", type=float, default=0.0, help="round trip added to the broker's link")
    parser.add_argument("--smtp-delay-ms", type=int, default=0, help="the mail sink's time per message")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND to run against it")
    args = parser.parse_args(argv)
    reason = netns.unavailable_reason()
    if reason is not None:
        print(reason, file=sys.stderr)
        return 2
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    # The sizing and queue config of the caller's environment, as `make worker` would pass them on.
    # The sizing and queue config of the caller's environment, passed on as `make worker` would.
    extra = {name: os.environ[name] for name in PASSED_ON if name in os.environ}
    try:
        with split_deployment(
            args.backend, args.workdir, rtt_ms=args.rtt_ms, extra=extra, smtp_delay_ms=args.smtp_delay_ms
        ) as deployment:
            where = {role: deployment.hosts.namespace(role) for role in ROLES}
            print(f"{args.backend} split over network namespaces {where}")
            for name, value in deployment.external_env().items():
                print(f"{name}={value}")
            if command:
                return _run(command, deployment.external_env())
            print("Ctrl-C stops it.", flush=True)
            signal.pause()
    except KeyboardInterrupt:
        return 130
    except StackError as exc:
        print(f"the split deployment did not start: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
