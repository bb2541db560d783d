"""TEST-ONLY SHIM for the API tests; drop it once the runner entry-point migration is merged.

At this branch point the ``inprocess`` entry point still names ``InProcessBackend`` while ``load_runner`` already
expects a ``Runner``, so ``load_backend`` raises TypeError ("is not a Runner") and no app can start. Until the
migration lands, the app's lifespan builds the in-process backend directly. The shim does nothing once the
entry point loads as a Runner, and it touches neither fbt_tasks nor any runner package.
"""

from fbt_tasks.backend import Backend
from fbt_tasks.runner import load_runner
from fbt_tasks.settings import Settings


def _entry_point_is_a_runner() -> bool:
    try:
        load_runner("inprocess")
    except TypeError:
        return False
    return True


def install() -> None:
    """Make ``fbt_api.app.create_app``'s lifespan load the in-process backend without the runner registry."""
    if _entry_point_is_a_runner():
        return
    import fbt_api.app
    from fbt_inprocess.backend import InProcessBackend

    real = fbt_api.app.load_backend

    def load_backend(settings: Settings) -> Backend:
        return InProcessBackend(settings) if settings.backend == "inprocess" else real(settings)

    fbt_api.app.load_backend = load_backend
