"""Free loopback ports, and waiting until something listens or answers on one.

Several engineers and test runs share this machine (and a system Redis owns 6379), so every service we
start binds a free port rather than a well-known one. The ports are drawn below the kernel's ephemeral range:
a broker that is restarted on its old port (clients hold its URL) must find it free, and a port inside the
range can meanwhile be the source port of some outgoing connection, or of a client reconnecting to the
very port while nothing listens there (TCP then connects the socket to itself).
"""

import random
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

POLL_S = 0.05


LOWEST_PORT = 10000  # above the registered services most machines run
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
DRAWS = 50


def _ephemeral_start() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago, outside the ephemeral range where one is (see the module's
    docstring); another process may take it first, so bind errors mean retry."""
    top = _ephemeral_start()
    for _ in range(DRAWS if top > LOWEST_PORT else 0):
        port = random.randrange(LOWEST_PORT, top)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))  # no free port below the range: any the kernel hands out
        return int(sock.getsockname()[1])


def port_is_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout_s: float) -> None:
    """Return once a TCP connect to host:port succeeds; raise TimeoutError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not port_is_open(host, port, timeout_s=min(0.5, max(timeout_s, 0.01))):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing accepted TCP connections on {host}:{port} within {timeout_s:.0f} s")
        time.sleep(POLL_S)


def http_status(url: str, timeout_s: float) -> int | None:
    """The status code of a GET, or None if the connection failed."""
    try:
        # Only ever called with the http:// URLs of services this package started itself.
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def wait_for_http(url: str, timeout_s: float, expect_status: int = 200) -> None:
    """Return once GET ``url`` answers ``expect_status``; raise TimeoutError naming the last answer seen."""
    deadline = time.monotonic() + timeout_s
    last: int | None = None
    while True:
        remaining = deadline - time.monotonic()
        last = http_status(url, timeout_s=min(2.0, max(remaining, 0.1)))
        if last == expect_status:
            return
        if time.monotonic() >= deadline:
            seen = "no connection" if last is None else f"last status {last}"
            raise TimeoutError(f"GET {url} did not answer {expect_status} within {timeout_s:.0f} s ({seen})")
        time.sleep(POLL_S * 2)
