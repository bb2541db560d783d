"""The development stack with real processes: embedded Redis, the SMTP sink, supervision, the whole Stack."""

import json
import smtplib
import subprocess
import sys
import textwrap
import time
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
import redis

from fbt_devstack import brokers
from fbt_devstack.ports import free_port, wait_for_port
from fbt_devstack.processes import ProcessGroup, all_alive, descendants_of_self, kill_tree
from fbt_devstack.redis_server import RedisServer
from fbt_devstack.smtp_sink import read_mailbox, wait_for_mail
from fbt_devstack.stack import Stack
from fbt_tasks.settings import Settings

# Safety nets only: generous, never a performance assertion.
pytestmark = pytest.mark.timeout(120)


def _wait_file(path: Path, timeout_s: float = 20) -> str:
    deadline = time.monotonic() + timeout_s
    while not (path.exists() and path.read_text().endswith("\n")):
        assert time.monotonic() < deadline, f"{path} was never written"
        time.sleep(0.05)
    return path.read_text()


def test_redis_server_restart_keeps_appendonly_data_and_stop_leaves_no_process(tmp_path: Path) -> None:
    server = RedisServer(workdir=tmp_path, appendonly=True)
    with server:
        assert server.server_version().startswith("6.2")
        client = redis.Redis.from_url(server.url, socket_timeout=5)
        client.set("fbt:test", "kept")
        first_pid, url = server.pid, server.url
        server.restart()
        assert server.url == url and server.pid != first_pid
        assert client.get("fbt:test") == b"kept"
        client.close()
        last_pid = server.pid
    assert server.pid is None
    assert all_alive([first_pid, last_pid]) == []
    server.stop()  # a second stop is harmless


def test_a_capped_redis_refuses_writes_until_the_cap_is_lifted(tmp_path: Path) -> None:
    """broker-full's limit: Redis answers OOM to a write while capped, takes it again once lifted."""
    with RedisServer(workdir=tmp_path) as server:
        client = redis.Redis.from_url(server.url)
        try:
            limit = brokers.cap_broker_memory(server, None, 0)
            assert "noeviction" in limit
            with pytest.raises(redis.exceptions.OutOfMemoryError):
                client.set("grows", b"x" * 100_000)
            assert client.ping()  # reads still answer: the server is full, not down
            brokers.lift_broker_memory_cap(server, None)
            assert client.set("grows", b"x" * 100_000)
        finally:
            client.close()


def test_smtp_sink_records_a_real_message(tmp_path: Path) -> None:
    mailbox, port = tmp_path / "mailbox.jsonl", free_port()
    argv = [sys.executable, "-m", "fbt_devstack.smtp_sink", "--port", str(port), "--mailbox", str(mailbox)]
    with ProcessGroup() as group:
        group.spawn("smtp", argv, env={}, log_path=tmp_path / "smtp.log")
        wait_for_port("127.0.0.1", port, timeout_s=30)
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "noreply@fbt.localhost", "a@example.com", "Welcome! 🎉"
        msg["Message-ID"] = "<abc@fbt.localhost>"
        msg.set_content("Thanks for joining")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.send_message(msg)
        [mail] = read_mailbox(mailbox)
        assert mail.to == ["a@example.com"]
        assert (mail.mail_from, mail.subject) == ("noreply@fbt.localhost", "Welcome! 🎉")
        assert mail.message_id == "<abc@fbt.localhost>" and mail.size > 0
        assert group.stop("smtp") == 0  # SIGTERM is a clean exit
    assert "mail lands in" in (tmp_path / "smtp.log").read_text()


GRANDCHILDREN = textwrap.dedent(
    """
    import json, subprocess, sys, time
    ignore_term = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
    sleeper = [sys.executable, "-c", ignore_term]
    escaped = subprocess.Popen(sleeper, start_new_session=True)   # setsid: leaves our session
    horse = subprocess.Popen(sleeper, process_group=0)           # setpgrp, like an RQ work-horse
    with open(sys.argv[1], "w") as fh:
        fh.write(json.dumps([escaped.pid, horse.pid]) + "\\n")
    time.sleep(300)
    """
)


def test_kill_tree_kills_a_setsid_grandchild(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids.json"
    parent = subprocess.Popen([sys.executable, "-c", GRANDCHILDREN, str(pids_file)])
    try:
        grandchildren = json.loads(_wait_file(pids_file))
        kill_tree(parent.pid)
        parent.wait(timeout=10)
        assert all_alive(grandchildren) == []
    finally:
        kill_tree(parent.pid)
        parent.wait(timeout=10)


def test_group_stop_reaches_descendants_orphaned_by_the_root(tmp_path: Path) -> None:
    """The root dies on SIGTERM at once; its SIGTERM-ignoring grandchildren must still be killed."""
    pids_file = tmp_path / "pids.json"
    with ProcessGroup() as group:
        group.spawn("tree", [sys.executable, "-c", GRANDCHILDREN, str(pids_file)], {}, tmp_path / "tree.log")
        grandchildren = json.loads(_wait_file(pids_file))
        assert set(grandchildren) <= set(group.pids("tree"))
        assert group.stop("tree", timeout_s=1) == -15
    assert all_alive(grandchildren) == []


@pytest.mark.e2e
def test_stack_inprocess_delivers_mail_and_stops_clean(tmp_path: Path) -> None:
    # Session fixtures (a shared Redis, an SMTP sink) may already be running: only what the stack adds counts.
    before = {proc.pid for proc in descendants_of_self()}
    settings = Settings(_env_file=None, backend="inprocess", port=0)
    stack = Stack(settings, workdir=tmp_path)
    with stack:
        pids = [pid for group in stack.groups().values() for pid in group]
        assert stack.groups()["workers"] == [] and len(pids) == 3
        response = httpx.post(
            f"{stack.api_url}/send-mail/",
            params={"email": "a@example.com"},
            headers={"X-API-Key": stack.api_key},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        job_id = response.json()["job_id"]
        [mail] = wait_for_mail(stack.mailbox_path, 1, timeout_s=30)
        assert (mail.to, mail.subject) == (["a@example.com"], "Welcome!")
        assert mail.message_id == f"<{job_id}@fbt.localhost>"
        assert len(stack.warmup_job_ids) == 1
    stack.stop()  # idempotent
    assert all_alive(pids) == []
    assert [proc for proc in descendants_of_self() if proc.pid not in before] == []
