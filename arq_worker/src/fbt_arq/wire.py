"""arq's data in Redis, as arq 0.28 lays it out (arq/constants.py, arq/jobs.py), with JSON instead of pickle.

Per job: ``arq:job:<id>`` holds the serialized job (``{"t": try, "f": function, "a": args, "k": kwargs,
"et": enqueue ms}``) and the queue, a sorted set, holds the id scored by the time it may run (ms). The id
stays in the queue while the job runs: ``arq:in-progress:<id>`` (a key with a TTL) is what keeps other
workers off it, and ``arq:retry:<id>`` counts the tries. A finished job leaves the queue and, for
``keep_result`` seconds, ``arq:result:<id>`` (the job plus ``s`` success, ``r`` result or error).
"""

import json
from typing import Any

from arq.constants import (
    default_queue_name,
    health_check_key_suffix,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)

# arq's default queue name: one queue per Redis database is all this project needs, and arq's own tools
# (`arq --check`, Job.status) look there unless told otherwise.
QUEUE_NAME = default_queue_name
HEALTH_CHECK_KEY = QUEUE_NAME + health_check_key_suffix
# The job functions' names (arq's Worker looks a job's "f" up among them): fbt.<kind>, as for every runner.
FUNCTION_PREFIX = "fbt."


def job_key(job_id: str) -> str:
    return job_key_prefix + job_id


def in_progress_key(job_id: str) -> str:
    return in_progress_key_prefix + job_id


def result_key(job_id: str) -> str:
    return result_key_prefix + job_id


def retry_key(job_id: str) -> str:
    return retry_key_prefix + job_id


def _jsonable(value: object) -> str:
    # A failed job's result is the exception object; arq would log a warning and store "unable to serialize
    # result" in its place. Its type and message say more and stay plain JSON.
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(data: dict[str, Any]) -> bytes:
    """arq's ``job_serializer``: JSON, never arq's default pickle (unpickling a job runs arbitrary code)."""
    return json.dumps(data, separators=(",", ":"), default=_jsonable).encode()


def loads(raw: bytes) -> dict[str, Any]:
    """arq's ``job_deserializer``, the other half of ``dumps``: it gives the API and the worker the same format."""
    data: dict[str, Any] = json.loads(raw)
    return data
