"""What a private RabbitMQ node needs before it starts: the installed scripts, why none can be had, and a
minimal AMQP login that proves a node accepts clients. Pure helpers, no process of ours; the node itself is
``fbt_devstack.rabbitmq_server``."""

import os
import shutil
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

AMQP_URL_ENV = "AMQP_URL"
# Where packages put the scripts even when sbin is not on a user's PATH.
EXTRA_BIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin", "/usr/lib/rabbitmq/bin")
HOW_TO_GET = (
    "apt install rabbitmq-server, brew install rabbitmq, or set AMQP_URL (docker compose up rabbitmq)"
)


class RabbitMQUnavailable(RuntimeError):
    """Neither AMQP_URL nor a rabbitmq-server binary."""


@dataclass(frozen=True, slots=True)
class RabbitMQTools:
    server: Path
    ctl: Path
    diagnostics: Path
    epmd: Path


def search_path(path: str | None) -> str:
    """``path`` if given, else PATH plus the sbin dirs packages install RabbitMQ's scripts into."""
    if path is not None:
        return path
    return os.pathsep.join([os.environ.get("PATH", ""), *EXTRA_BIN_DIRS])


def find_rabbitmq(path: str | None = None) -> RabbitMQTools | None:
    """The real scripts next to whatever ``rabbitmq-server`` is first on ``path`` (default: PATH + sbin dirs)."""
    found = shutil.which("rabbitmq-server", path=search_path(path))
    if found is None:
        return None
    # Debian's /usr/sbin/rabbitmq-server is a symlink to a wrapper that lives beside the real scripts.
    bin_dir = Path(found).resolve().parent
    tools = {name: bin_dir / name for name in ("rabbitmq-server", "rabbitmqctl", "rabbitmq-diagnostics")}
    if not all(os.access(tool, os.X_OK) for tool in tools.values()):
        return None
    epmd = shutil.which("epmd", path=search_path(path)) or shutil.which("epmd", path="/usr/lib/erlang/bin")
    if epmd is None:
        return None
    return RabbitMQTools(
        tools["rabbitmq-server"], tools["rabbitmqctl"], tools["rabbitmq-diagnostics"], Path(epmd)
    )


def external_amqp_url() -> str | None:
    """The broker the environment supplies, if any: then the devstack starts none."""
    return os.environ.get(AMQP_URL_ENV) or None


def missing_binary_reason(path: str | None = None) -> str | None:
    """None if a private node can be started here; otherwise one line saying why and how to get one."""
    if find_rabbitmq(path) is not None:
        return None
    return f"no RabbitMQ: rabbitmq-server (with Erlang's epmd) is not installed; {HOW_TO_GET}"


def rabbitmq_unavailable_reason(path: str | None = None) -> str | None:
    """None if a broker can be had (AMQP_URL, else the binary); otherwise one line saying why and how."""
    if external_amqp_url() is not None:
        return None
    return missing_binary_reason(path)


# --- A minimal AMQP 0-9-1 client handshake: proves the broker accepts a login, with no client library. ---

FRAME_METHOD, FRAME_END, CONNECTION_CLASS = 1, 0xCE, 10


def _shortstr(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">B", len(data)) + data


def _send_method(sock: socket.socket, method_id: int, args: bytes) -> None:
    payload = struct.pack(">HH", CONNECTION_CLASS, method_id) + args
    sock.sendall(struct.pack(">BHI", FRAME_METHOD, 0, len(payload)) + payload + bytes([FRAME_END]))


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection during the AMQP handshake")
        data += chunk
    return data


def _expect_method(sock: socket.socket, method_id: int) -> bytes:
    frame_type, _channel, size = struct.unpack(">BHI", _recv_exact(sock, 7))
    body = _recv_exact(sock, size + 1)
    method = struct.unpack(">HH", body[:4])
    if frame_type != FRAME_METHOD or body[-1] != FRAME_END or method != (CONNECTION_CLASS, method_id):
        raise ConnectionError(f"expected connection method {method_id}, got frame {frame_type} {method}")
    return body[4:-1]


# guest/guest is RabbitMQ's built-in loopback-only user, the one our private nodes accept.
def amqp_handshake(host: str, port: int, user: str = "guest", password: str = "guest") -> None:  # noqa: S107
    """Log in and open the default vhost, then close; raises OSError if the broker does not let us."""
    with socket.create_connection((host, port), timeout=2.0) as sock:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        _expect_method(sock, 10)  # connection.start
        response = f"\0{user}\0{password}".encode()
        start_ok = struct.pack(">I", 0) + _shortstr("PLAIN") + struct.pack(">I", len(response)) + response
        _send_method(sock, 11, start_ok + _shortstr("en_US"))
        channel_max, frame_max = struct.unpack(">HI", _expect_method(sock, 30)[:6])  # connection.tune
        _send_method(sock, 31, struct.pack(">HIH", channel_max, frame_max, 0))
        _send_method(sock, 40, _shortstr("/") + _shortstr("") + b"\x00")
        _expect_method(sock, 41)  # connection.open-ok
        _send_method(sock, 50, struct.pack(">H", 200) + _shortstr("ready check") + struct.pack(">HH", 0, 0))
        _expect_method(sock, 51)  # connection.close-ok
