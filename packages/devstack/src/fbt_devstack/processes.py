"""Supervise child process trees so that nothing we start outlives us.

Every child is started in a session of its own (``start_new_session``): a terminal's Ctrl-C then reaches only
the supervisor, which stops the children in order, and the session id finds descendants that were orphaned.
A process *tree* is collected before anything is signalled, because by the time a parent is dead its
children have been re-parented and are no longer its descendants; an RQ work-horse even calls ``setpgrp``
and can outlive its parent. Processes that leave our session *and* lose their parent cannot be found again,
which is one more reason to take the snapshot first.

``stop`` is graceful the way each library documents it: SIGTERM goes to the root only (Celery, RQ and
Dramatiq main processes forward it to their pool and finish the jobs in hand; signalling pool children
directly would turn a warm shutdown into lost jobs), then whatever of the tree is left gets SIGKILL.
"""

import atexit
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType

import psutil

POLL_S = 0.05
# Scanning every process for our session id costs a few ms; doing it every poll would be wasteful.
SESSION_SCAN_EVERY_S = 0.25


def is_alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (an orphan's zombie may linger if PID 1 does not reap; it is dead to us)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def own_session(proc: psutil.Process) -> int | None:
    """The session id if ``proc`` leads a session other than ours (we made it with start_new_session)."""
    try:
        sid = os.getsid(proc.pid)
    except OSError:
        return None
    # Never scan the caller's own session: that would include the supervisor itself and its terminal.
    if sid != proc.pid or sid == os.getsid(0):
        return None
    return sid


def session_members(sid: int) -> list[psutil.Process]:
    me = os.getpid()
    found = []
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            if os.getsid(proc.pid) == sid:
                found.append(proc)
        except OSError:
            continue
    return found


class ProcessTree:
    """A root, every descendant ever seen, and the members of the root's session, keyed by pid."""

    def __init__(self, root: psutil.Process, sid: int | None = None) -> None:
        self.root = root
        # A root we started with start_new_session leads session == its pid, even after it was reaped.
        self.sid = sid if sid is not None else own_session(root)
        self.members: dict[int, psutil.Process] = {root.pid: root}
        self._last_session_scan = 0.0
        self._signalled: dict[int, set[int]] = {}
        self.refresh(scan_session=True)

    def refresh(self, *, scan_session: bool = False) -> None:
        for proc in list(self.members.values()):
            if not is_alive(proc):
                continue
            try:
                for child in proc.children(recursive=True):
                    self.members.setdefault(child.pid, child)
            except psutil.Error:
                continue
        now = time.monotonic()
        if self.sid is not None and (scan_session or now - self._last_session_scan >= SESSION_SCAN_EVERY_S):
            self._last_session_scan = now
            for proc in session_members(self.sid):
                self.members.setdefault(proc.pid, proc)

    def alive(self) -> list[psutil.Process]:
        return [proc for proc in self.members.values() if is_alive(proc)]

    def signal(self, sig: int) -> None:
        """Signal every living member not yet given ``sig``.

        Children first, so a still-living root cannot notice a dead child and fork a replacement. Each process
        gets each signal once: to RQ, for one, a second SIGTERM turns a warm shutdown into a cold one.
        """
        ordered = [proc for proc in self.alive() if proc.pid != self.root.pid]
        ordered.append(self.root)
        done = self._signalled.setdefault(sig, set())
        for proc in ordered:
            if proc.pid not in done:
                done.add(proc.pid)
                _send(proc, sig)

    def signal_until_gone(self, sig: int, timeout_s: float) -> bool:
        """Signal the tree, and every member that appears later (a root may fork replacements), until all
        are gone or ``timeout_s`` passed; True if all are gone."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.refresh()
            if not self.alive():
                # A child forked just before its parent died (an RQ work-horse) is an orphan that only a
                # session scan finds, and the throttled one may predate the fork: scan before declaring done.
                self.refresh(scan_session=True)
                if not self.alive():
                    return True
            if time.monotonic() >= deadline:
                return False
            self.signal(sig)
            time.sleep(POLL_S)

    def wait_gone(self, timeout_s: float) -> bool:
        """Wait until no member is alive, picking up new descendants as they appear; True if all are gone."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.refresh()
            if not self.alive():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_S)


def _send(proc: psutil.Process, sig: int) -> None:
    try:
        proc.send_signal(sig)  # psutil checks the pid was not reused since we looked it up
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        pass


def kill_tree(pid: int, sig: int = signal.SIGKILL, timeout_s: float = 5.0) -> None:
    """Send ``sig`` to the whole tree under ``pid`` (descendants collected first); SIGKILL what survives."""
    try:
        tree = ProcessTree(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return
    if not tree.signal_until_gone(sig, timeout_s) and sig != signal.SIGKILL:
        tree.signal_until_gone(signal.SIGKILL, timeout_s)


class Child:
    """One supervised root process and where its output goes."""

    def __init__(self, name: str, popen: psutil.Popen, log_path: Path) -> None:
        self.name = name
        self.popen = popen
        self.log_path = log_path

    @property
    def returncode(self) -> int | None:
        """None while running; otherwise the exit status (negative: killed by that signal)."""
        code: int | None = self.popen.poll()  # psutil.Popen forwards poll() untyped
        return code


# Strong references on purpose: a group dropped by its owner must still be stopped at exit.
_LIVE_GROUPS: "set[ProcessGroup]" = set()


class ProcessGroup:
    """Named child processes, each the root of a tree in its own session; stopped in reverse start order."""

    def __init__(self) -> None:
        self._children: dict[str, Child] = {}

    def spawn(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path | None = None
    ) -> psutil.Process:
        """Start ``argv``, stdout and stderr appended to ``log_path``; a name is reusable once it exited."""
        previous = self._children.get(name)
        if previous is not None and previous.returncode is None:
            raise ValueError(f"a process named {name!r} is already running (pid {previous.popen.pid})")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            log.write(
                f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}: {' '.join(argv)}\n".encode()
            )
            log.flush()
            popen = psutil.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._children[name] = Child(name, popen, log_path)
        _LIVE_GROUPS.add(self)
        return popen

    def child(self, name: str) -> Child:
        try:
            return self._children[name]
        except KeyError:
            raise KeyError(
                f"no process named {name!r} (known: {', '.join(self._children) or 'none'})"
            ) from None

    @property
    def names(self) -> list[str]:
        return list(self._children)

    def pids(self, name: str) -> list[int]:
        """The root and its current descendants, for sampling CPU and memory; empty once it exited."""
        child = self._children.get(name)
        if child is None or child.returncode is not None:
            return []
        try:
            descendants = child.popen.children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return [child.popen.pid, *(proc.pid for proc in descendants if is_alive(proc))]

    def running_pid(self, name: str) -> int | None:
        """The pid of child ``name`` while it runs; None if it never started or has exited."""
        child = self._children.get(name)
        return child.popen.pid if child is not None and child.returncode is None else None

    def exited(self) -> dict[str, int]:
        """Children that ended without being stopped through this group, with their exit status."""
        return {
            name: code for name, child in self._children.items() if (code := child.returncode) is not None
        }

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Fault injection, modelled on a container runtime.

        SIGKILL takes the whole tree down and waits until it is gone; any other signal goes to the root only,
        as ``docker kill -s`` delivers it to the container's PID 1.
        """
        child = self.child(name)
        if sig == signal.SIGKILL:
            ProcessTree(child.popen, sid=child.popen.pid).signal_until_gone(signal.SIGKILL, timeout_s=10.0)
            child.popen.wait()  # reap, keeping the exit status for exited()
        else:
            _send(child.popen, sig)

    def stop(self, name: str, timeout_s: float = 10.0) -> int | None:
        """SIGTERM the root, wait ``timeout_s`` for the whole tree, SIGKILL the rest; return the status."""
        child = self._children.pop(name, None)
        if not self._children:
            _LIVE_GROUPS.discard(self)
        if child is None:
            return None
        tree = ProcessTree(child.popen, sid=child.popen.pid)
        if child.returncode is None:
            _send(child.popen, signal.SIGTERM)
        if not tree.wait_gone(timeout_s):
            tree.signal_until_gone(signal.SIGKILL, timeout_s)
        return child.popen.wait()

    def stop_all(self, timeout_s: float = 10.0) -> None:
        for name in reversed(self.names):
            self.stop(name, timeout_s)

    def __enter__(self) -> "ProcessGroup":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log, for error messages."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16_384))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def descendants_of_self() -> list[psutil.Process]:
    """Living descendants of this process: what a clean shutdown must leave empty."""
    return [proc for proc in psutil.Process().children(recursive=True) if is_alive(proc)]


def all_alive(pids: Iterable[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if is_alive(psutil.Process(pid)):
                alive.append(pid)
        except psutil.NoSuchProcess:
            continue
    return alive


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Let teardown finish even if Ctrl-C is pressed again: a second interrupt must not leave orphans."""
    received: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, _frame: received.append(signum))
    except ValueError:  # not the main thread: nothing to defer
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            raise KeyboardInterrupt


@atexit.register
def _stop_live_groups() -> None:
    # Interpreter exit (normal, sys.exit, an uncaught exception, or a signal the CLI turned into SystemExit).
    for group in list(_LIVE_GROUPS):
        group.stop_all(timeout_s=5.0)
