"""Error responses shared by every route: their OpenAPI documentation and the broker-down handler."""

from fastapi import Request
from fastapi.responses import JSONResponse

from fbt_api.schemas import ErrorOut

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut, "description": "Missing or invalid X-API-Key"},
    413: {"model": ErrorOut, "description": "Request body too large"},
    503: {"model": ErrorOut, "description": "Broker unreachable; nothing was enqueued"},
}


async def broker_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 with Retry-After: the broker is down, so a POST enqueued nothing and may simply be retried."""
    consequence = ", nothing was enqueued" if request.method == "POST" else ""
    return JSONResponse(
        {"detail": f"Broker unavailable{consequence}: {exc}"},
        status_code=503,
        headers={"Retry-After": "5"},
    )
