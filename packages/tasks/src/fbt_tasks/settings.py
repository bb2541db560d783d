"""One typed settings object, read from the environment, shared by the API, the workers and the harness.

Plain data: nothing here knows which runners are installed. ``fbt_tasks.registry.configure`` checks BACKEND
against them and fills in the runner's default BROKER; every entry point does that once, before it forks.
"""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# anyio's default thread limiter: what Starlette's threadpool (sync routes and BackgroundTasks) gets when
# API_THREADPOOL is left at 0.
ANYIO_DEFAULT_THREADPOOL = 40

# Printed by `make run` when API_KEY is unset; the API refuses a non-loopback bind while it is in use.
DEV_API_KEY = "dev-only-key-do-not-deploy"

BrokerName = Literal["redis", "rabbitmq", "none"]
# A runner's reliability configuration (fbt_tasks.runner.QueueConfig): as shipped, or the library's defaults.
QueueConfigName = Literal["safe", "defaults"]


class BrokerUnresolved(RuntimeError):
    """The settings were read but never configured, so the runner's default broker is not known yet."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # An open name: any runner installed under the fbt.backends entry points (fbt_tasks.registry); it has
    # no default here, so a deployment always says which runner it is (`make` picks one, compose each service).
    backend: str = ""
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Where a runner's messages wait: one of the runner's ``brokers`` (fbt_tasks.runner); unset means its
    # first (default) one, filled in by fbt_tasks.registry.configure. Redis stays in use beside RabbitMQ for
    # results and the send-once guard.
    broker: BrokerName | None = None
    # RabbitMQ's AMQP URL, used when BROKER=rabbitmq (the devstack starts a private node and sets it).
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672//"
    # Fail fast when Redis is gone so the API can answer 503 instead of hanging.
    redis_socket_timeout_s: float = Field(1.0, gt=0, le=30)

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(1025, ge=1, le=65535)
    # A real provider answers in well under this; a hung SMTP server must not hold a worker slot forever.
    smtp_timeout_s: float = Field(10.0, gt=0, le=120)
    mail_from: str = "noreply@fbt.localhost"
    # At-most-once email under at-least-once delivery (lease + sent record in Redis, see fbt_tasks.once).
    email_send_once: bool = True

    # Decoding and resampling cost grows with pixels; beyond this a resize request is refused with 422.
    max_image_pixels: int = Field(40_000_000, ge=1)

    log_file: Path = Path("var/log.txt")
    ledger_file: Path = Path("var/ledger.jsonl")
    media_dir: Path = Path("var/media")

    api_key: str = ""
    host: str = "127.0.0.1"
    # Starlette's threadpool runs sync routes *and* sync BackgroundTasks; 0 keeps anyio's default.
    api_threadpool: int = Field(0, ge=0, le=1024)
    # uvicorn's per-request access log; the benchmark turns it off for every runner alike.
    access_log: bool = True
    # 0 asks the devstack (tests, the harness) to pick a free port.
    port: int = Field(8000, ge=0, le=65535)

    # Worker slots (processes x threads) each runner gets; the benchmark keeps this equal across runners.
    worker_processes: int = Field(2, ge=1, le=64)
    worker_threads: int = Field(4, ge=1, le=256)

    # The runner's queue config (reliability settings, fbt_tasks.runner.QueueConfig): "safe" is what make run
    # and compose ship, "defaults" is each library's out-of-the-box behaviour, kept so the fault benchmark
    # can show the difference.
    queue_config: QueueConfigName = "safe"

    @property
    def broker_name(self) -> BrokerName:
        """The broker in force: redis, rabbitmq, or none (set once ``fbt_tasks.registry.configure``d)."""
        if self.broker is None:
            raise BrokerUnresolved("BROKER is unset: build the settings with fbt_tasks.registry.configure")
        return self.broker

    @property
    def slots(self) -> int:
        return self.worker_processes * self.worker_threads

    @property
    def effective_api_key(self) -> str:
        return self.api_key or DEV_API_KEY


@lru_cache
def get_settings() -> Settings:
    return Settings()
