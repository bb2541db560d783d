"""One typed settings object, read from the environment, shared by the API, the workers and the harness."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# anyio's default thread limiter: what Starlette's threadpool (sync routes and BackgroundTasks) gets when
# API_THREADPOOL is left at 0.
ANYIO_DEFAULT_THREADPOOL = 40

# Printed by `make run` when API_KEY is unset; the API refuses a non-loopback bind while it is in use.
DEV_API_KEY = "dev-only-key-do-not-deploy"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # An open name: any runner installed under the fbt.backends entry points (fbt_tasks.runner).
    backend: str = "inprocess"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Where a runner's messages wait: one of the runner's ``brokers`` (fbt_tasks.runner); unset means its
    # first (default) one. Redis stays in use beside RabbitMQ for results and the send-once guard.
    broker: Literal["redis", "rabbitmq", "none"] | None = None
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

    # RQ's default Worker forks a work-horse per job (isolation, ~ms per job); SimpleWorker runs jobs in-process.
    rq_worker_mode: Literal["fork", "simple"] = "fork"

    # The runner's queue config (reliability settings, fbt_tasks.runner.QueueConfig): "safe" is what make run
    # and compose ship, "defaults" is each library's out-of-the-box behaviour, kept so the fault benchmark
    # can show the difference.
    queue_config: Literal["safe", "defaults"] = "safe"

    @field_validator("backend")
    @classmethod
    def _installed_runner(cls, name: str) -> str:
        from fbt_tasks.runner import UnknownRunner, installed_runners

        if name not in installed_runners():
            raise UnknownRunner(
                f"BACKEND={name!r} is not installed; installed: {', '.join(installed_runners())}"
            )
        return name

    @model_validator(mode="after")
    def _supported_broker(self) -> "Settings":
        from fbt_tasks.runner import UnsupportedBroker, load_runner

        brokers = load_runner(self.backend).brokers
        if self.broker is None:
            self.broker = brokers[0]
        elif self.broker not in brokers:
            raise UnsupportedBroker(
                f"BACKEND={self.backend} does not run on BROKER={self.broker}; it supports: {', '.join(brokers)}"
            )
        return self

    @property
    def broker_name(self) -> str:
        """The broker in force (always set once validated): redis, rabbitmq, or none."""
        assert self.broker is not None
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
