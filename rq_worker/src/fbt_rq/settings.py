"""RQ's own settings beside the shared ``Settings``: read from ``RQ_*`` variables, so only this runner names them."""

from functools import lru_cache
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

WorkerMode = Literal["fork", "simple"]


class RQSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RQ_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # RQ_WORKER_MODE: "fork", RQ's default Worker, forks a work-horse per job (a crashing job cannot take the
    # worker down); "simple", SimpleWorker, runs jobs in the worker process (fbt_rq.worker says what that costs).
    worker_mode: WorkerMode = "fork"


@lru_cache
def get_rq_settings() -> RQSettings:
    return RQSettings()
