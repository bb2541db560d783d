"""Shared fixtures: real services only (embedded Redis, a real SMTP sink), started per session."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from fbt_devstack import sink
from fbt_devstack.redis_server import RedisServer
from fbt_tasks.settings import get_settings


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private Redis per test module: a runner's module worker owns database 0 and its tests' own workers
    database 1, so no worker takes another module's jobs and adding a runner picks no number by hand."""
    with RedisServer(workdir=tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def smtp_sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """A real SMTP server process (the project's aiosmtpd sink); yields (port, mailbox path)."""
    with sink.smtp_sink(tmp_path_factory.mktemp("smtp")) as running:
        yield running.port, running.mailbox


@pytest.fixture
def task_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, smtp_sink: tuple[int, Path]
) -> Iterator[Path]:
    """Point the shared settings at real services and a private temp dir, for in-process task calls."""
    port, _ = smtp_sink
    env = {
        "REDIS_URL": redis_server.url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),
        "LOG_FILE": str(tmp_path / "log.txt"),
        "LEDGER_FILE": str(tmp_path / "ledger.jsonl"),
        "MEDIA_DIR": str(tmp_path / "media"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """End-to-end runs of minutes (marked slow) run only when FBT_SLOW=1: `make test-slow`, CI's second step."""
    import os

    if os.environ.get("FBT_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow end-to-end run: make test-slow (FBT_SLOW=1) runs it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
