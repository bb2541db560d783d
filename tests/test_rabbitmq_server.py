"""A private RabbitMQ node from the installed rabbitmq-server: messages, restart, crash, and a clean stop.

One node serves the whole module (a boot costs seconds of CPU); the last test stops it for good.
"""

import os
import time
from collections.abc import Iterator
from pathlib import Path

import kombu
import psutil
import pytest

from fbt_devstack.processes import all_alive, descendants_of_self, is_alive, session_members
from fbt_devstack.rabbitmq_server import RabbitMQServer, amqp_url_or_start
from fbt_devstack.rabbitmq_tools import amqp_handshake, missing_binary_reason, rabbitmq_unavailable_reason

# Safety nets only: generous, never a performance assertion.
pytestmark = pytest.mark.timeout(240)

SYSTEM_AMQP_PORT = 5672


@pytest.fixture(scope="module")
def rabbit() -> Iterator[RabbitMQServer]:
    reason = missing_binary_reason()
    if reason is not None:
        pytest.skip(reason)
    with RabbitMQServer() as server:
        yield server


def _queue(name: str, **arguments: object) -> kombu.Queue:
    exchange = kombu.Exchange(name, "direct", durable=True)
    return kombu.Queue(name, exchange, routing_key=name, durable=True, queue_arguments=arguments or None)


def _publish(url: str, queue: kombu.Queue, body: dict[str, str]) -> None:
    """A persistent message, confirmed by the broker (so it is on disk before we go on)."""
    with kombu.Connection(url, transport_options={"confirm_publish": True}) as conn:
        conn.Producer().publish(
            body,
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            declare=[queue],
            delivery_mode=2,
            serializer="json",
        )


def _get(url: str, queue: kombu.Queue, timeout_s: float = 30.0) -> object:
    """Consume one message (a quorum queue may need a moment to elect its leader after a restart)."""
    deadline = time.monotonic() + timeout_s
    with kombu.Connection(url) as conn:
        bound = queue(conn.default_channel)
        bound.declare()
        while (message := bound.get(no_ack=False)) is None:
            assert time.monotonic() < deadline, f"no message in {queue.name}"
            time.sleep(0.1)
        message.ack()
        return message.payload


def _system_listener_pids(port: int) -> set[int]:
    """Who listens on ``port``, seen from the kernel's socket table: no connection is made to it."""
    return {
        conn.pid
        for conn in psutil.net_connections(kind="tcp")
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid is not None
    }


def test_unavailable_reason_is_one_line_naming_the_ways_to_get_rabbitmq(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AMQP_URL", raising=False)
    reason = rabbitmq_unavailable_reason(path=str(tmp_path))  # a PATH with no rabbitmq-server on it
    assert reason is not None and "\n" not in reason
    for way in ("apt install rabbitmq-server", "brew install rabbitmq", "docker compose up rabbitmq"):
        assert way in reason
    monkeypatch.setenv("AMQP_URL", "amqp://guest:guest@broker.invalid:5672//")
    assert rabbitmq_unavailable_reason(path=str(tmp_path)) is None


def test_amqp_url_from_the_environment_starts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_URL", "amqp://guest:guest@broker.invalid:5672//")
    before = {proc.pid for proc in descendants_of_self()}
    with amqp_url_or_start() as url:
        assert url == "amqp://guest:guest@broker.invalid:5672//"
        assert {proc.pid for proc in descendants_of_self()} == before


def test_a_persistent_message_round_trips_through_a_durable_queue(rabbit: RabbitMQServer) -> None:
    assert rabbit.url == f"amqp://guest:guest@127.0.0.1:{rabbit.port}//"
    assert rabbit.port != SYSTEM_AMQP_PORT
    queue = _queue("fbt.roundtrip")
    _publish(rabbit.url, queue, {"task": "welcome"})
    assert _get(rabbit.url, queue) == {"task": "welcome"}


def test_durable_and_quorum_messages_survive_a_restart(rabbit: RabbitMQServer) -> None:
    classic = _queue("fbt.restart.classic")
    quorum = _queue("fbt.restart.quorum", **{"x-queue-type": "quorum"})
    _publish(rabbit.url, classic, {"kept": "classic"})
    _publish(rabbit.url, quorum, {"kept": "quorum"})
    url, first_pid = rabbit.url, rabbit.pid
    rabbit.restart()
    assert rabbit.url == url and rabbit.pid != first_pid
    # The CLI reaches the node through our epmd with our cookie, not the system node's.
    assert rabbit.ping()
    assert _get(rabbit.url, classic) == {"kept": "classic"}
    assert _get(rabbit.url, quorum) == {"kept": "quorum"}


def test_sigkill_takes_the_node_tree_down_and_start_brings_it_back(rabbit: RabbitMQServer) -> None:
    queue = _queue("fbt.crash")
    _publish(rabbit.url, queue, {"kept": "through a crash"})
    node_pids = [pid for pid in rabbit.pids() if psutil.Process(pid).name() != "epmd"]
    rabbit.kill()
    # The tree is signalled children first: the rabbitmq-server script may exit by itself once beam.smp is
    # gone, before its own SIGKILL lands, so its status is -9 or its own exit code. Either way it is down.
    assert rabbit.pid is None and rabbit.returncode is not None
    assert all_alive(node_pids) == []
    rabbit.start()
    amqp_handshake("127.0.0.1", rabbit.port or 0)
    # A confirmed persistent message was on disk before the crash.
    assert _get(rabbit.url, queue) == {"kept": "through a crash"}


def test_stop_leaves_no_process_of_the_node_and_the_system_node_runs_on(rabbit: RabbitMQServer) -> None:
    rabbit.start()
    system_before = _system_listener_pids(SYSTEM_AMQP_PORT)
    pids = rabbit.pids()
    names = {psutil.Process(pid).name() for pid in pids}
    assert {"beam.smp", "epmd", "erl_child_setup"} <= names
    beam = next(psutil.Process(pid) for pid in pids if psutil.Process(pid).name() == "beam.smp")
    epmd_peers = {conn.raddr.port for conn in beam.net_connections(kind="tcp") if conn.raddr}
    assert rabbit.epmd_port in epmd_peers and 4369 not in epmd_peers  # registered with ours only
    # erl_child_setup and inet_gethost call setsid: each session, not just the root's, must end empty.
    sessions = {os.getsid(pid) for pid in pids}
    workdir = rabbit.workdir

    rabbit.close()

    assert rabbit.pid is None
    assert all_alive(pids) == []
    # An orphaned inet_gethost worker may be a zombie for a moment until PID 1 reaps it: dead all the same.
    assert [proc.pid for sid in sessions for proc in session_members(sid) if is_alive(proc)] == []
    assert not workdir.exists()
    assert _system_listener_pids(SYSTEM_AMQP_PORT) == system_before
    assert all_alive(system_before) == sorted(system_before)
    rabbit.stop()  # a second stop is harmless
