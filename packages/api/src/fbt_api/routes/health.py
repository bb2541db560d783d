"""GET /health: unauthenticated, so load balancers and compose healthchecks can call it."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from fbt_api.deps import REQUIRE_API_KEY, BackendDep
from fbt_api.schemas import EnqueueCostOut, Health
from fbt_tasks.enqueue_cost import LIBRARY_ENQUEUE

router = APIRouter()


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
def health(backend: BackendDep) -> JSONResponse:
    up = backend.ping()
    body = Health(status="ok" if up else "degraded", backend=backend.name, broker="up" if up else "down")
    return JSONResponse(body.model_dump(), status_code=200 if up else 503)


@router.get("/health/enqueue-cost", response_model=EnqueueCostOut, dependencies=REQUIRE_API_KEY)
def enqueue_cost() -> EnqueueCostOut:
    """The thread CPU this process spent inside the library's own enqueue call since it started
    (``fbt_tasks.enqueue_cost``; the harness reads it before and after a window to decompose the API's cost)."""
    calls, cpu_s = LIBRARY_ENQUEUE.totals()
    return EnqueueCostOut(enqueues=calls, cpu_s=cpu_s)
