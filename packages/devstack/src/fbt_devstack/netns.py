"""Several "hosts" on one machine: Linux network namespaces joined by veth pairs through a bridge, with a
chosen round-trip time between every host and the broker.

``Hosts`` makes one namespace per role (e.g. api, broker, workers), each with a veth whose other end is
enslaved to a bridge in the root namespace; the bridge holds the subnet's first address, so processes left in
the root namespace (the harness, its load generator, the SMTP sink standing in for a hosted provider) reach
every host directly. Names carry a short prefix, this process's pid and a letter per set of hosts it has made,
so parallel runs (and parallel fault cells in one run) never collide and ``cleanup()`` can tell a dead run's
leftovers from a live one's.

``isolate`` cuts hosts from each other, silently and both ways, as a network partition does: their bridge ports
become isolated ports, which the bridge never forwards between (kernel >= 4.18; no tc, no netfilter, so it
works on kernels built without sch_netem), while each can still reach the root namespace and every port left
unisolated. ``rejoin`` mends it; the TCP connections open across the cut resume where they stalled.

The delay sits on the broker's link only, so only traffic to and from the broker pays it: half the RTT on
each direction. Where the kernel has ``sch_netem`` it is a netem qdisc on both ends of the broker's veth.
Kernels built without it (some micro-VMs) get the same round trip from ``fbt_devstack.delay_proxy``, a TCP
relay in the broker's namespace that holds each chunk half the RTT each way; ``delay_method`` says which,
and numbers are compared only within one method.
"""

import contextlib
import ipaddress
import os
import re
import shutil
import signal
import string
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Literal

from fbt_devstack.processes import sigint_deferred

PREFIX = "fbtn"
DelayMethod = Literal["netem", "proxy"]
# Our subnets come from here; a /24 per run, picked from the pid and moved on if the machine uses it.
POOL = ipaddress.IPv4Network("10.213.0.0/16")
# Interface names are at most 15 characters: prefix (4) + pid (up to 7) + set letter (1) + role + end letter (1).
ROLE_CHARS = 2
IP_TIMEOUT_S = 20.0
# One letter per set of hosts this process has made and not yet destroyed.
_SET_LETTERS = string.ascii_lowercase
_tags_in_use: set[str] = set()
# Choosing a free subnet and taking it must not interleave between two sets made at once.
_making = threading.Lock()


def _claim_tag() -> str:
    with _making:
        for letter in _SET_LETTERS:
            tag = f"{os.getpid()}{letter}"
            if tag not in _tags_in_use:
                _tags_in_use.add(tag)
                return tag
    raise HostsUnavailable(f"{len(_SET_LETTERS)} sets of hosts exist in this process already")


class HostsUnavailable(RuntimeError):
    """This machine cannot make network namespaces (not root, or no iproute2)."""


def unavailable_reason() -> str | None:
    """One line saying why namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "the hosts topology needs root (network namespaces, veth pairs and a bridge)"
    missing = [tool for tool in ("ip", "tc", "bridge") if shutil.which(tool) is None]
    if missing:
        return f"the hosts topology needs iproute2 ({' and '.join(missing)} not found)"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    run = subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        timeout=IP_TIMEOUT_S,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if check and run.returncode != 0:
        raise HostsUnavailable(f"{' '.join(args)} failed: {(run.stderr or run.stdout).strip()}")
    return run


def our_namespaces(prefix: str = PREFIX) -> list[str]:
    """Namespaces whose names start with ``prefix`` (``ip netns list`` prints 'name (id: N)')."""
    out = _ip("ip", "netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


def our_links(prefix: str = PREFIX) -> list[str]:
    """Links in the root namespace whose names start with ``prefix`` ('name@peer' loses its '@peer')."""
    out = _ip("ip", "-o", "link", "show", check=False).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]
    return [name for name in names if name.startswith(prefix)]


def _pid_of(name: str, prefix: str) -> int | None:
    found = re.match(rf"{re.escape(prefix)}(\d+)", name)
    return int(found.group(1)) if found else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup(prefix: str = PREFIX, *, include_live: bool = False) -> list[str]:
    """Remove namespaces and links with ``prefix`` left by runs that died; return what was removed.

    A name's pid says which run made it: a live run's (another engineer's) is left alone unless asked.
    """
    removed = []
    for name in our_namespaces(prefix):
        pid = _pid_of(name, prefix)
        if include_live or pid is None or not _alive(pid):
            _ip("ip", "netns", "del", name, check=False)
            removed.append(name)
    for name in our_links(prefix):
        pid = _pid_of(name, prefix)
        if include_live or pid is None or not _alive(pid):
            _ip("ip", "link", "del", name, check=False)
            removed.append(name)
    return removed


def netem_available() -> bool:
    """Whether this kernel has sch_netem: add and remove one on a throwaway namespace's loopback."""
    probe = f"{PREFIX}{os.getpid()}probe"
    _ip("ip", "netns", "add", probe)
    try:
        added = _ip(
            "tc", "-n", probe, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms", check=False
        )
        return added.returncode == 0
    finally:
        _ip("ip", "netns", "del", probe, check=False)


def _used_networks() -> list[ipaddress.IPv4Network]:
    out = _ip("ip", "-4", "-o", "addr", "show", check=False).stdout
    return [ipaddress.IPv4Interface(word).network for word in re.findall(r"inet (\S+)", out)]


def free_subnet(pid: int) -> ipaddress.IPv4Network:
    """A /24 of POOL that no interface here uses, starting from one derived from ``pid``."""
    subnets = list(POOL.subnets(new_prefix=24))
    used = _used_networks()
    for step in range(len(subnets)):
        candidate = subnets[(pid + step) % len(subnets)]
        if not any(candidate.overlaps(net) for net in used):
            return candidate
    raise HostsUnavailable(f"no free /24 left in {POOL}")


@dataclass
class Hosts:
    """``with Hosts(("api", "broker", "workers"), rtt_ms=5) as hosts: hosts.exec_prefix("broker")``."""

    roles: Sequence[str]
    rtt_ms: float = 0.0
    broker_role: str = "broker"
    # None: netem where the kernel has it, else the delay proxy.
    method: DelayMethod | None = None
    prefix: str = PREFIX
    # The pid and this set's letter; claimed when the hosts are created, released when destroyed.
    tag: str = ""
    subnet: ipaddress.IPv4Network | None = None
    delay_method: DelayMethod = "netem"
    _made_ns: list[str] = field(default_factory=list)
    _made_links: list[str] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"{self.prefix}{self.tag}bx"  # no role starts with "bx"

    def namespace(self, role: str) -> str:
        return f"{self.prefix}{self.tag}{role[:ROLE_CHARS]}"

    def address(self, role: str) -> str:
        """The role's address on the bridge's subnet (the root namespace's is ``gateway``)."""
        if self.subnet is None:
            raise HostsUnavailable("the hosts have not been created")
        return str(self.subnet.network_address + 2 + list(self.roles).index(role))

    @property
    def gateway(self) -> str:
        """The bridge's address: where processes left in the root namespace are reached."""
        if self.subnet is None:
            raise HostsUnavailable("the hosts have not been created")
        return str(self.subnet.network_address + 1)

    def exec_prefix(self, role: str) -> list[str]:
        """Prepend to an argv to run it on ``role``'s host (``ip netns exec`` execs in place: same pid)."""
        # The full path: a child started with a bare environment (redis-server's) has no PATH to search.
        return [shutil.which("ip") or "ip", "netns", "exec", self.namespace(role)]

    def pids(self, role: str) -> set[int]:
        """The processes running in ``role``'s namespace now (``ip netns pids``, which reads /proc/*/ns/net)."""
        out = _ip("ip", "netns", "pids", self.namespace(role), check=False).stdout
        return {int(word) for word in out.split()}

    @property
    def one_way_delay_ms(self) -> float:
        return self.rtt_ms / 2.0

    def create(self) -> "Hosts":
        reason = unavailable_reason()
        if reason is not None:
            raise HostsUnavailable(reason)
        if len({role[:ROLE_CHARS] for role in self.roles}) != len(self.roles):
            raise ValueError(f"roles must differ in their first {ROLE_CHARS} letters: {list(self.roles)}")
        if "bx" in {role[:ROLE_CHARS] for role in self.roles}:
            raise ValueError("no role may start with 'bx': the bridge is named so")
        self.tag = self.tag or _claim_tag()
        try:
            with _making:
                self._create()
        except BaseException:
            self.destroy()
            raise
        return self

    def _create(self) -> None:
        self.delay_method = self.method or ("netem" if netem_available() else "proxy")
        self.subnet = self.subnet or free_subnet(_pid_of(self.prefix + self.tag, self.prefix) or 0)
        length = self.subnet.prefixlen
        _ip("ip", "link", "add", self.bridge, "type", "bridge")
        self._made_links.append(self.bridge)
        _ip("ip", "addr", "add", f"{self.gateway}/{length}", "dev", self.bridge)
        _ip("ip", "link", "set", self.bridge, "up")
        for role in self.roles:
            ns, outside, inside = self.namespace(role), self.namespace(role) + "h", self.namespace(role) + "n"
            _ip("ip", "netns", "add", ns)
            self._made_ns.append(ns)
            _ip("ip", "link", "add", outside, "type", "veth", "peer", "name", inside, "netns", ns)
            self._made_links.append(outside)
            _ip("ip", "link", "set", outside, "master", self.bridge, "up")
            _ip("ip", "-n", ns, "addr", "add", f"{self.address(role)}/{length}", "dev", inside)
            _ip("ip", "-n", ns, "link", "set", inside, "up")
            _ip("ip", "-n", ns, "link", "set", "lo", "up")
            # The root namespace (harness, SMTP sink) is reached through the bridge's address.
            _ip("ip", "-n", ns, "route", "add", "default", "via", self.gateway)
        if self.delay_method == "netem" and self.rtt_ms > 0:
            ns = self.namespace(self.broker_role)
            delay = f"{self.one_way_delay_ms}ms"
            # Both directions of the broker's link: every host's round trip to the broker gains rtt_ms.
            _ip("tc", "-n", ns, "qdisc", "add", "dev", ns + "n", "root", "netem", "delay", delay)
            _ip("tc", "qdisc", "add", "dev", ns + "h", "root", "netem", "delay", delay)

    def destroy(self) -> None:
        """Delete what was made (a namespace takes its veth end and the peer with it); never raises."""
        for ns in reversed(self._made_ns):
            _ip("ip", "netns", "del", ns, check=False)
        for link in reversed(self._made_links):
            if link in our_links(self.prefix):
                _ip("ip", "link", "del", link, check=False)
        self._made_ns.clear()
        self._made_links.clear()
        with _making:
            _tags_in_use.discard(self.tag)

    def _port(self, role: str) -> str:
        """The bridge port of ``role``'s link (the veth end left in the root namespace)."""
        if role not in self.roles:
            raise ValueError(f"no host {role!r} among {list(self.roles)}")
        return self.namespace(role) + "h"

    def isolate(self, *roles: str) -> None:
        """Cut ``roles`` off from each other, both ways, silently: every packet between them is dropped."""
        for role in roles:
            _ip("bridge", "link", "set", "dev", self._port(role), "isolated", "on")

    def rejoin(self, *roles: str) -> None:
        """Undo ``isolate``: the hosts reach each other again."""
        for role in roles:
            _ip("bridge", "link", "set", "dev", self._port(role), "isolated", "off")

    def __enter__(self) -> "Hosts":
        return self.create()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.destroy()


@contextlib.contextmanager
def hosts(roles: Sequence[str], rtt_ms: float, method: DelayMethod | None = None) -> Iterator[Hosts]:
    """Hosts torn down on success, failure, Ctrl-C and SIGTERM (turned into SystemExit while they exist)."""
    made = Hosts(roles, rtt_ms=rtt_ms, method=method)

    def terminate(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = None
    # Only where nobody handles SIGTERM yet (the benchmark CLI turns it into Ctrl-C itself).
    with contextlib.suppress(ValueError):  # not the main thread: the caller handles signals
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield made.create()
    finally:
        # A second Ctrl-C must not leave namespaces behind.
        with sigint_deferred():
            made.destroy()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


def round_trip_ms(role_prefix: Sequence[str], host: str, port: int, n: int = 21) -> float:
    """The median of ``n`` TCP round trips (a Redis inline PING) from a host to ``host:port``, in ms.

    Run in the namespace ``role_prefix`` names, through whatever sits on the way (netem or the delay proxy):
    what a worker's command to the broker really waits for, measured rather than assumed.
    """
    code = (
        "import socket,statistics,sys,time\n"
        f"s=socket.create_connection(({host!r},{port}),timeout=10)\n"
        "s.setsockopt(socket.IPPROTO_TCP,socket.TCP_NODELAY,1)\n"
        "t=[]\n"
        f"for _ in range({n}):\n"
        "    a=time.perf_counter();s.sendall(b'PING\\r\\n');s.recv(64);t.append(time.perf_counter()-a)\n"
        "print(statistics.median(t)*1000)\n"
    )
    out = subprocess.run(
        [*role_prefix, sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return float(out.stdout.strip())


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fbt_devstack.netns cleanup``: remove the namespaces and links of runs that died."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args != ["cleanup"]:
        print("usage: python -m fbt_devstack.netns cleanup", file=sys.stderr)
        return 2
    for name in cleanup():
        print(f"removed {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
