"""GET /health: unauthenticated, so load balancers and compose healthchecks can call it."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from fbt_api.deps import REQUIRE_API_KEY, BackendDep
from fbt_api.enqueue_cost import ENQUEUE_COST
from fbt_api.schemas import EnqueueCostOut, Health

router = APIRouter()


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
def health(backend: BackendDep) -> JSONResponse:
    up = backend.ping()
    body = Health(status="ok" if up else "degraded", backend=backend.name, broker="up" if up else "down")
    return JSONResponse(body.model_dump(), status_code=200 if up else 503)


@router.get("/health/enqueue-cost", response_model=EnqueueCostOut, dependencies=REQUIRE_API_KEY)
def enqueue_cost() -> EnqueueCostOut:
    """The thread CPU this process spent inside the runner's enqueue since it started (the harness reads it
    before and after a window to decompose the API's cost per request)."""
    calls, cpu_s = ENQUEUE_COST.totals()
    return EnqueueCostOut(enqueues=calls, cpu_s=cpu_s)
