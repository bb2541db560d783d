"""``fbt-run`` (what ``make run`` calls): the whole stack for one backend, in the foreground, until Ctrl-C."""

import contextlib
import os
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import psutil
import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from fbt_devstack.ports import port_is_open
from fbt_devstack.processes import descendants_of_self, is_alive, log_tail
from fbt_devstack.stack import Stack, StackError
from fbt_tasks.registry import configure
from fbt_tasks.settings import DEV_API_KEY, Settings

WATCH_S = 0.5
console = Console(highlight=False)


class Interrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum: int, _: FrameType | None) -> None:
    # Only the first signal interrupts; further ones must not abort the bounded shutdown half-way.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


def curl_example(stack: Stack) -> str:
    return f"curl -X POST -H 'X-API-Key: {stack.api_key}' '{stack.api_url}/send-mail/?email=a@example.com'"


def summary(stack: Stack, *, own_redis: bool, own_smtp: bool) -> Panel:
    settings = stack.settings
    table = Table.grid(padding=(0, 2))
    table.add_row(
        "Backend",
        f"[bold]{settings.backend}[/] on {settings.broker_name} (QUEUE_CONFIG={settings.queue_config})",
    )
    if settings.broker_name == "rabbitmq":
        where = f"private node {stack.rabbitmq.node}" if stack.rabbitmq is not None else "external (AMQP_URL)"
        table.add_row("RabbitMQ", f"{settings.amqp_url.split('@')[-1]}  ({where})")
    table.add_row("API", f"{stack.api_url}  (interactive docs: {stack.api_url}/docs)")
    key_note = " [bold red](development key: API_KEY is unset)[/]" if not settings.api_key else ""
    table.add_row("API key", f"{stack.api_key}{key_note}")
    table.add_row("Redis", f"{stack.redis_url}  ({'embedded redis-server' if own_redis else 'external'})")
    if own_smtp:
        sink = f"{settings.smtp_host}:{settings.smtp_port}"
        table.add_row("Mail", f"{stack.mailbox_path}  (one JSON line per message; SMTP sink on {sink})")
    else:
        table.add_row("Mail", f"sent to the SMTP server at {settings.smtp_host}:{settings.smtp_port}")
    table.add_row("Task log", str(stack.log_path))
    table.add_row("Ledger", str(stack.ledger_path))
    table.add_row("Process logs", str(stack.logs_dir))
    return Panel(table, title="fbt-run: ready", subtitle="Ctrl-C stops everything", expand=False)


class Census:
    """The stack's processes as last seen alive, so the final check can prove none outlived the stop.

    Kept as psutil handles (pid + start time) and pruned as they exit: with fork-per-job workers a plain
    set of pids would grow for hours and eventually match unrelated processes that reused a pid.
    """

    def __init__(self) -> None:
        self.procs: dict[int, psutil.Process] = {}

    def update(self, stack: Stack) -> None:
        for pids in stack.groups().values():
            for pid in pids:
                if pid not in self.procs:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        self.procs[pid] = psutil.Process(pid)
        self.procs = {pid: proc for pid, proc in self.procs.items() if is_alive(proc)}

    def survivors(self) -> list[int]:
        alive = {pid for pid, proc in self.procs.items() if is_alive(proc)}
        return sorted(alive | {proc.pid for proc in descendants_of_self()})


def watch(stack: Stack, census: Census) -> tuple[str, int]:
    """Block until a child dies; return its name and exit status. Signals interrupt this via Interrupted."""
    while True:
        census.update(stack)
        if dead := stack.failed():
            return next(iter(dead.items()))
        time.sleep(WATCH_S)


def _preflight(settings: Settings) -> None:
    """Warn about the development API key; exit (2) if the API's port is already taken."""
    if not settings.api_key:
        console.print(
            f"[bold yellow]API_KEY is unset: using the development key {DEV_API_KEY!r}. "
            "Fine on loopback; the API refuses any other address with it.[/]"
        )
    probe_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    if settings.port and port_is_open(probe_host, settings.port):
        console.print(f"[bold red]Port {settings.port} is already in use; set PORT to a free port.[/]")
        raise typer.Exit(2)


def _serve(stack: Stack, census: Census, workdir: Path, *, own_redis: bool, own_smtp: bool) -> int:
    """Start the stack and serve until a child dies (exit code 1) or a signal arrives (0); the caller stops it."""
    try:
        console.print(f"Starting the {stack.backend} stack in {workdir}/ ...")
        stack.start()
        census.update(stack)
        console.print(summary(stack, own_redis=own_redis, own_smtp=own_smtp))
        console.print("Try it:")
        console.print(curl_example(stack), soft_wrap=True, markup=False)
        name, code = watch(stack, census)
        console.print(f"[bold red]{name} exited unexpectedly with status {code}; stopping everything.[/]")
        console.print(log_tail(stack.process_log(name)), markup=False, soft_wrap=True)
        return 1
    except Interrupted as exc:
        console.print(f"\nReceived {exc}; stopping ...")
        return 0
    except StackError as exc:
        console.print("[bold red]The stack did not start:[/]")
        console.print(str(exc), markup=False, soft_wrap=True)
        return 1


def cli(
    workdir: Annotated[
        Path,
        typer.Option(help="Directory for Redis data, the mailbox, ledger, task log and process logs."),
    ] = Path("var"),
    smtp_delay_ms: Annotated[
        int, typer.Option(min=0, max=60_000, help="Make the SMTP sink take this long per message.")
    ] = 0,
    redis_appendonly: Annotated[
        bool, typer.Option(help="Run the embedded Redis with AOF persistence (data survives its restarts).")
    ] = False,
    ready_timeout_s: Annotated[
        float, typer.Option(min=1, help="How long to wait for the stack to prove it works end to end.")
    ] = 120.0,
) -> None:
    """Start Redis, an SMTP sink, the API and BACKEND's workers, wired together; Ctrl-C stops them all.

    Settings come from the environment (see .env.example): BACKEND, BROKER, PORT, API_KEY, QUEUE_CONFIG, ...
    An embedded Redis starts unless REDIS_URL is set, a private RabbitMQ node when BROKER=rabbitmq unless
    AMQP_URL is set, and an SMTP sink unless SMTP_HOST is set.
    """
    settings = configure(Settings())
    own_redis = "REDIS_URL" not in os.environ
    own_rabbitmq = "AMQP_URL" not in os.environ
    own_smtp = "SMTP_HOST" not in os.environ
    _preflight(settings)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    stack = Stack(
        settings,
        workdir=workdir,
        start_redis=own_redis,
        start_rabbitmq=own_rabbitmq,
        start_smtp=own_smtp,
        smtp_delay_ms=smtp_delay_ms,
        redis_appendonly=redis_appendonly,
        ready_timeout_s=ready_timeout_s,
    )
    census = Census()
    try:
        exit_code = _serve(stack, census, workdir, own_redis=own_redis, own_smtp=own_smtp)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        stack.stop()
        leftovers = census.survivors()
    if leftovers:
        console.print(f"[bold red]Processes still alive after stopping: {leftovers}[/]")
        exit_code = 1
    else:
        console.print("Stopped everything; no processes left behind.")
    raise typer.Exit(exit_code)


def main() -> None:
    typer.run(cli)


if __name__ == "__main__":
    main()
