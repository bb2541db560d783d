"""FastAPI BackgroundTasks with ``async def`` tasks: the one object registered under ``fbt.backends``.

The other path FastAPI offers: an async task runs on the API's event loop, not on the threadpool. Anything in
it that blocks (a sync SMTP or Redis call, a resize done in place) stalls every request the API is serving,
not just one thread; ``fbt_tasks.aio`` therefore awaits the I/O and sends the resize to a thread. cpu-heavy
shows what is left of the resize on the loop: the Python around Pillow's GIL-free calls competing with the
API's requests for the GIL. Everything else (no broker, no worker, the health check, nothing to configure) is
the sync runner's, which this one extends.
"""

from fbt_inprocess.plugin import InProcessRunner, threadpool_tokens
from fbt_inprocess_async.faults import FAULTS
from fbt_tasks.backend import Backend
from fbt_tasks.runner import FaultModel, PublishedDrain
from fbt_tasks.settings import Settings


class InProcessAsyncRunner(InProcessRunner):
    name = "inprocess-async"
    display_name = "BackgroundTasks (async)"
    description = (
        "FastAPI BackgroundTasks with async def tasks: tasks run on the API's event loop after the response, "
        "no broker"
    )
    distributions: tuple[str, ...] = ("fastapi", "starlette", "aiosmtplib", "redis")
    faults: FaultModel = FAULTS
    published_drains: tuple[PublishedDrain, ...] = ()

    def backend(self, settings: Settings) -> Backend:
        from fbt_inprocess_async.backend import InProcessAsyncBackend

        return InProcessAsyncBackend(settings)

    def slot_layout(self, settings: Settings) -> str:
        return (
            f"{settings.slots} tasks at once on the API's event loop (an asyncio.Semaphore), resize_image on "
            f"threads; the API's sync routes keep anyio's {threadpool_tokens(settings)}-token threadpool"
        )


RUNNER = InProcessAsyncRunner()
