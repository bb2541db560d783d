"""A real, private RabbitMQ node for development and tests, started from an installed ``rabbitmq-server``.

RabbitMQ has no pip wheel, so unlike Redis the binary comes from the OS (``apt install rabbitmq-server``,
``brew install rabbitmq``), or a broker is supplied from outside through ``AMQP_URL`` (``docker compose up
rabbitmq``), in which case nothing is started here.

A system RabbitMQ may already run on this machine (5672, with its epmd on 4369), so our node shares
nothing with it: its own node name, AMQP and distribution ports, Erlang cookie (HOME is the work dir), config,
enabled-plugins and env files, data and log dirs, and an epmd of its own on a free port that the node and
its CLI tools reach through ``ERL_EPMD_PORT``. We call the scripts in RabbitMQ's own bin dir, not Debian's
``/usr/sbin`` wrappers: as root those ``su`` to the ``rabbitmq`` user, which resets HOME to the system
node's and so would hand us the system node's cookie.
"""

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import psutil

from fbt_devstack.ports import free_port, port_is_open
from fbt_devstack.processes import ProcessGroup, ProcessTree, kill_tree, log_tail
from fbt_devstack.rabbitmq_tools import (
    HOW_TO_GET,
    RabbitMQTools,
    RabbitMQUnavailable,
    amqp_handshake,
    external_amqp_url,
    find_rabbitmq,
    missing_binary_reason,
    rabbitmq_unavailable_reason,
    search_path,
)

NAME = "rabbitmq"
EPMD = "epmd"
LOOPBACK = "127.0.0.1"
START_ATTEMPTS = 3


class PortTaken(RuntimeError):
    """Someone bound one of our ports between our probe and the node's (or epmd's) bind."""


@contextmanager
def amqp_url_or_start(workdir: Path | None = None) -> Iterator[str]:
    """``AMQP_URL`` when set (nothing started), else the URL of a private node stopped when the block exits."""
    url = external_amqp_url()
    if url is not None:
        yield url
        return
    reason = rabbitmq_unavailable_reason()
    if reason is not None:
        raise RabbitMQUnavailable(reason)
    with RabbitMQServer(workdir) as server:
        yield server.url


def _three_free_ports() -> tuple[int, int, int]:
    """AMQP, distribution and epmd ports: three distinct ones, though each probe alone may repeat."""
    ports: list[int] = []
    while len(ports) < 3:
        if (port := free_port()) not in ports:
            ports.append(port)
    return ports[0], ports[1], ports[2]


class RabbitMQServer:
    """``with RabbitMQServer() as server: server.url`` — a private RabbitMQ node and its own epmd.

    ``stop()``/``start()`` (and ``kill()``/``start()``) keep the node name, ports and data, so durable queues
    and persistent messages survive; leaving the ``with`` block (``close()``) also removes a work dir we
    created, unless ``keep_workdir``. A ``workdir`` the caller passes is never removed.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        keep_workdir: bool = False,
        ready_timeout_s: float = 90.0,
        tools: RabbitMQTools | None = None,
        bind: str = LOOPBACK,
        argv_prefix: Sequence[str] = (),
    ) -> None:
        found = tools or find_rabbitmq()
        if found is None:
            raise RabbitMQUnavailable(missing_binary_reason() or f"rabbitmq-server not found; {HOW_TO_GET}")
        self.tools = found
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="fbt-rabbitmq-")).resolve()
        self.keep_workdir = keep_workdir
        self.ready_timeout_s = ready_timeout_s
        # On a host of its own (fbt_devstack.netns): the AMQP listener (and epmd, for our readiness check) on
        # that host's address, every process started through ``argv_prefix``; distribution stays on the
        # host's loopback, where the CLI tools, started the same way, reach it.
        self.bind = bind
        self.argv_prefix = list(argv_prefix)
        # Fixed for the server's life: the node's data dir is named after it, so a restart finds its queues.
        self.node = f"fbt-{os.getpid()}-{secrets.token_hex(3)}@localhost"
        self.log_path = self.workdir / "rabbitmq.log"
        self.port: int | None = None
        self.dist_port: int | None = None
        self.epmd_port: int | None = None
        self._group = ProcessGroup()

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the RabbitMQ node has not been started yet")
        return f"amqp://guest:guest@{self.bind}:{self.port}//"

    @property
    def pid(self) -> int | None:
        """The root of the node's tree (the rabbitmq-server script, parent of beam.smp) while it runs."""
        return self._group.running_pid(NAME)

    @property
    def returncode(self) -> int | None:
        """The exit status if the node died (or was killed); None while it runs or after ``stop()``."""
        return self._group.exited().get(NAME)

    def pids(self) -> list[int]:
        """The node's tree (script, beam.smp, erl_child_setup, inet_gethost) and our epmd, while running."""
        return [*self._group.pids(NAME), *self._group.pids(EPMD)]

    def env(self) -> dict[str, str]:
        """The environment for the node and for CLI tools aimed at it; nothing inherited but PATH."""
        assert self.port is not None and self.dist_port is not None and self.epmd_port is not None
        work = self.workdir
        return {
            "PATH": search_path(None),
            "HOME": str(work),  # ~/.erlang.cookie is then ours, for the node and the CLI alike
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "RABBITMQ_NODENAME": self.node,
            # Not /etc/rabbitmq/rabbitmq-env.conf, which names the system node and its settings.
            "RABBITMQ_CONF_ENV_FILE": str(work / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(work / "rabbitmq.conf"),
            "RABBITMQ_CONFIG_FILES": str(work / "conf.d"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(work / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(work / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(work / "mnesia"),
            "RABBITMQ_LOG_BASE": str(work / "log"),
            "RABBITMQ_LOGS": "-",  # to stdout, which the process group appends to log_path
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": LOOPBACK,
            "ERL_CRASH_DUMP": str(work / "log" / "erl_crash.dump"),
            # Never spawn a daemon epmd (it would detach from our tree); ours is already listening.
            # No scheduler busy-waiting (RabbitMQ's runtime guide, "CPU usage" on shared hosts): an idle node
            # on a small shared machine otherwise spins its schedulers and takes CPU from everything else.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": (
                "-kernel inet_dist_use_interface {127,0,0,1} -start_epmd false "
                "+sbwt none +sbwtdcpu none +sbwtdio none"
            ),
            "RABBITMQ_CTL_ERL_ARGS": "-start_epmd false",
        }

    def _write_files(self) -> None:
        work = self.workdir
        (work / "conf.d").mkdir(parents=True, exist_ok=True)
        (work / "rabbitmq-env.conf").write_text("")
        # guest may log in from loopback only (RabbitMQ's default), which is all we bind; a node on a host of
        # its own is reached from the others, on a network only this run's namespaces share.
        loopback_only = "true" if self.bind == LOOPBACK else "false"
        (work / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = {self.bind}:{self.port}\nloopback_users.guest = {loopback_only}\n"
        )
        (work / "enabled_plugins").write_text("[].\n")  # no management plugin: faster boot, no extra port
        cookie = work / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(16))
            cookie.chmod(0o400)  # Erlang refuses a cookie others can read

    def start(self) -> "RabbitMQServer":
        if self.pid is not None:
            return self
        # Once a start succeeded, restarts reuse its ports so that clients holding ``url`` reconnect; a port
        # taken meanwhile (a client's ephemeral port, say, while the node was down) is usually free again a
        # moment later, so a restart tries again on the same ports.
        fixed = self.port is not None
        for attempt in range(1, START_ATTEMPTS + 1):
            if not fixed:
                self.port, self.dist_port, self.epmd_port = _three_free_ports()
            try:
                self._spawn_and_wait()
            except BaseException as exc:
                self._stop_processes(timeout_s=5.0)
                if not fixed:
                    self.port = self.dist_port = self.epmd_port = None
                if isinstance(exc, PortTaken) and attempt < START_ATTEMPTS:
                    time.sleep(1.0 if fixed else 0.0)
                    continue
                raise
            return self
        raise AssertionError("unreachable")

    def _spawn_and_wait(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_files()
        env = self.env()
        if self._group.pids(EPMD) == []:
            addresses = LOOPBACK if self.bind == LOOPBACK else f"{LOOPBACK},{self.bind}"
            epmd_argv = [*self.argv_prefix, str(self.tools.epmd), "-port", str(self.epmd_port)]
            epmd_argv += ["-address", addresses]
            self._group.spawn(EPMD, epmd_argv, env=env, log_path=self.workdir / "epmd.log", cwd=self.workdir)
            self._wait_epmd()
        argv = [*self.argv_prefix, str(self.tools.server)]
        self._group.spawn(NAME, argv, env=env, log_path=self.log_path, cwd=self.workdir)
        self._wait_ready()

    def _wait_epmd(self) -> None:
        assert self.epmd_port is not None
        deadline = time.monotonic() + 10.0
        while not port_is_open(self.bind, self.epmd_port):
            if self._group.child(EPMD).returncode is not None or time.monotonic() >= deadline:
                raise PortTaken(
                    f"epmd could not listen on {self.epmd_port}: {log_tail(self.workdir / 'epmd.log')}"
                )
            time.sleep(0.05)

    def _wait_ready(self) -> None:
        """Until a guest login on the AMQP port succeeds: the listener opens once boot has completed."""
        assert self.port is not None
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            code = self._group.child(NAME).returncode
            if code is not None:
                tail = log_tail(self.log_path, lines=40)
                if "eaddrinuse" in tail.lower():
                    raise PortTaken(f"a port of {self.node} was taken before it could bind it:\n{tail}")
                raise RuntimeError(
                    f"rabbitmq-server exited with status {code} on start; {self.log_path}:\n{tail}"
                )
            if port_is_open(self.bind, self.port):
                try:
                    amqp_handshake(self.bind, self.port)
                    return
                except OSError:
                    pass
            if time.monotonic() >= deadline:
                self._stop_processes(timeout_s=5.0)
                raise TimeoutError(
                    f"RabbitMQ node {self.node} did not accept an AMQP login on port {self.port} within "
                    f"{self.ready_timeout_s:.0f} s; {self.log_path}:\n{log_tail(self.log_path, lines=40)}"
                )
            time.sleep(0.1)

    def cli(self, tool: Path, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run a RabbitMQ CLI tool (``self.tools.ctl``...) against this node; its whole tree dies on timeout."""
        argv = [*self.argv_prefix, str(tool), "-n", self.node, *args]
        proc = psutil.Popen(
            argv,
            env=self.env(),
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid)
            proc.communicate()
            raise TimeoutError(f"{' '.join(argv)} did not finish within {timeout_s:.0f} s") from None
        return subprocess.CompletedProcess(argv, proc.returncode, out, "")

    def ping(self, timeout_s: float = 30.0) -> bool:
        """``rabbitmq-diagnostics ping``: the node answers over Erlang distribution (our epmd, our cookie)."""
        try:
            return self.cli(self.tools.diagnostics, "ping", timeout_s=timeout_s).returncode == 0
        except TimeoutError:
            return False

    def queue_counts(self, timeout_s: float = 60.0) -> dict[str, tuple[int, int]]:
        """Every queue of the node with its (ready, unacked) message counts, by ``rabbitmqctl list_queues``.

        AMQP shows a queue's ready count only; unacked messages (delivered to a live consumer, or held by one
        until a delay is due) are visible only to the node's own tools. A CLI call boots an Erlang VM (about
        a second of CPU), so callers ask rarely. Raises RuntimeError if the node does not answer.
        """
        found = self.cli(
            self.tools.ctl,
            "--quiet",
            "list_queues",
            "--no-table-headers",
            "name",
            "messages_ready",
            "messages_unacknowledged",
            timeout_s=timeout_s,
        )
        if found.returncode != 0:
            raise RuntimeError(f"rabbitmqctl list_queues failed: {found.stdout.strip()[-300:]}")
        counts: dict[str, tuple[int, int]] = {}
        for line in found.stdout.splitlines():
            fields = line.split("\t")
            if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
                counts[fields[0]] = (int(fields[1]), int(fields[2]))
        return counts

    def stop(self, timeout_s: float = 30.0) -> None:
        """``rabbitmqctl stop`` (graceful: queues are flushed), then kill what is left of the tree, and epmd."""
        if self.pid is not None:
            # Snapshot first: erl_child_setup and inet_gethost start sessions of their own, and once beam.smp
            # is gone they are nobody's descendants and in no session of ours.
            tree = ProcessTree(psutil.Process(self.pid), sid=self.pid)
            try:
                self.cli(self.tools.ctl, "stop", timeout_s=timeout_s)
            except TimeoutError:
                pass  # the SIGTERM/SIGKILL below still ends it
            self._stop_processes(timeout_s=timeout_s)
            tree.signal_until_gone(signal.SIGKILL, timeout_s=5.0)
        else:
            self._stop_processes(timeout_s=timeout_s)

    def _stop_processes(self, timeout_s: float) -> None:
        # SIGTERM to the script is itself graceful (it forwards to beam.smp), SIGKILL follows after timeout_s.
        self._group.stop(NAME, timeout_s=timeout_s)
        self._group.stop(EPMD, timeout_s=5.0)

    def kill(self) -> None:
        """Broker crash: SIGKILL the node's whole tree at once. Our epmd survives, as a host's would."""
        if NAME in self._group.names:
            self._group.kill(NAME, signal.SIGKILL)

    def restart(self) -> "RabbitMQServer":
        """Stop and start with the same node name, ports and data: durable queues and their messages survive."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop, then remove the work dir if we created it and were not asked to keep it."""
        self.stop()
        if self._owns_workdir and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "RabbitMQServer":
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
