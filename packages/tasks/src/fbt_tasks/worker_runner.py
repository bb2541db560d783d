"""The part of a runner plugin that every runner with worker processes of its own shares.

A broker runner's plugin subclasses ``WorkerRunner`` and declares only what is its own: the ``Runner``
protocol's data (name, brokers, queue configs, fault knowledge ...), where its backend and its readiness
check live, how it spends the slots and its fidelity reference. Its worker is always its own console script,
``fbt-worker-<name>``. The backend and the check are named as ``module:attribute`` and imported on first use,
so loading a plugin (the report, the harness's planning) never imports the queue library.
"""

from importlib import import_module
from typing import Any

from fbt_tasks.backend import Backend
from fbt_tasks.runner import PublishedDrain
from fbt_tasks.settings import Settings


def _attribute(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(import_module(module), name)


class WorkerRunner:
    name: str
    runs_in_api = False
    published_drains: tuple[PublishedDrain, ...] = ()
    # "fbt_rq.backend:RQBackend": the Backend class the API builds with the settings.
    backend_class: str
    # "fbt_rq.health:worker_ready": Settings -> bool, whether at least one worker is alive (compose's
    # healthcheck and the devstack ask it through ``python -m fbt_tasks.health``).
    ready_check: str

    def backend(self, settings: Settings) -> Backend:
        backend: Backend = _attribute(self.backend_class)(settings)
        return backend

    def worker_command(self, settings: Settings) -> list[str] | None:  # noqa: ARG002 (the Runner protocol's signature)
        return [f"fbt-worker-{self.name}"]

    def worker_ready(self, settings: Settings) -> bool:
        return bool(_attribute(self.ready_check)(settings))
