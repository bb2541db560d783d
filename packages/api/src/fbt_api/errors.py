"""Error responses shared by every route: their OpenAPI documentation and the broker-down handler."""

import json
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
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


class EchoSafeJSONResponse(JSONResponse):
    """JSONResponse that still renders when the content holds a lone surrogate (a JSON client can send one).

    A 422 echoes the offending input; UTF-8 cannot encode a lone surrogate, so the stock renderer raised and a
    bad request became a 500. Only then are non-ASCII characters written as \\u escapes: the same JSON value.
    """

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode(
                "ascii"
            )


async def invalid_input(request: Request, exc: Exception) -> JSONResponse:  # noqa: ARG001 (Starlette's exception handler signature)
    """FastAPI's own 422 body ({"detail": [errors]}), rendered so that any input can be echoed back."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else [{"msg": str(exc)}]
    return EchoSafeJSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)
