"""FastAPI BackgroundTasks as the project sees it: the one object registered under ``fbt.backends``.

No broker and no worker: tasks run on the API's own threadpool, so the API answering is the worker being
ready, and there is no queue to configure.
"""

import urllib.error
import urllib.request
from collections.abc import Mapping

from fbt_inprocess.faults import FAULTS
from fbt_tasks.backend import Backend
from fbt_tasks.reference import Reference
from fbt_tasks.runner import BrokerName, FaultModel, PublishedDrain, QueueConfig, QueueConfigName
from fbt_tasks.settings import ANYIO_DEFAULT_THREADPOOL, Settings

HEALTH_TIMEOUT_S = 2.0

# One object for both names: the fault matrix runs a configuration once per distinct object.
AS_SHIPPED = QueueConfig(
    name="safe",
    summary="no queue to configure: tasks run once in the API process, nothing persists or retries them",
    max_attempts=1,
    settings={},
)


def threadpool_tokens(settings: Settings) -> int:
    """Starlette's threadpool (anyio's default limiter) as the API sizes it: API_THREADPOOL, 0 = anyio's."""
    return settings.api_threadpool or ANYIO_DEFAULT_THREADPOOL


class InProcessRunner:
    name = "inprocess"
    display_name = "BackgroundTasks"
    description = "FastAPI BackgroundTasks: tasks run in the API process after the response, no broker"
    brokers: tuple[BrokerName, ...] = ("none",)
    runs_in_api = True
    distributions: tuple[str, ...] = ("fastapi", "starlette", "anyio")
    queue_configs: Mapping[str, Mapping[QueueConfigName, QueueConfig]] = {
        "none": {"safe": AS_SHIPPED, "defaults": AS_SHIPPED}
    }
    faults: FaultModel = FAULTS
    published_drains: tuple[PublishedDrain, ...] = ()

    def backend(self, settings: Settings) -> Backend:
        from fbt_inprocess.backend import InProcessBackend

        return InProcessBackend(settings)

    def worker_command(self, settings: Settings) -> list[str] | None:  # noqa: ARG002 (the Runner protocol's signature)
        return None

    def worker_ready(self, settings: Settings) -> bool:
        """The API answers ``/health``: its threadpool, which runs the tasks, is up with it."""
        host = "127.0.0.1" if settings.host in ("", "0.0.0.0", "::") else settings.host
        url = f"http://{host}:{settings.port}/health"
        try:
            with urllib.request.urlopen(url, timeout=HEALTH_TIMEOUT_S) as response:
                status: int = response.status
                return status == 200
        except (urllib.error.URLError, OSError):
            return False

    def slot_layout(self, settings: Settings) -> str:
        return f"anyio threadpool of {threadpool_tokens(settings)} tokens, shared with the API's sync routes"

    def reference(self, settings: Settings) -> Reference | None:  # noqa: ARG002 (the Runner protocol's signature)
        return None  # the tasks run in the API: there is no library worker to hold the runner against


RUNNER = InProcessRunner()
