"""Free loopback ports, and waiting until something listens or answers on one.

Several engineers and test runs share this machine (and a system Redis owns 6379), so every service we
start binds a port the kernel hands out rather than a well-known one.
"""

import socket
import time
import urllib.error
import urllib.request

POLL_S = 0.05


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago; another process may take it first, so bind errors mean retry."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
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
