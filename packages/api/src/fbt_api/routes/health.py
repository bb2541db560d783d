"""GET /health: unauthenticated, so load balancers and compose healthchecks can call it."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from fbt_api.deps import BackendDep
from fbt_api.schemas import Health

router = APIRouter()


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
def health(backend: BackendDep) -> JSONResponse:
    up = backend.ping()
    body = Health(status="ok" if up else "degraded", backend=backend.name, broker="up" if up else "down")
    return JSONResponse(body.model_dump(), status_code=200 if up else 503)
