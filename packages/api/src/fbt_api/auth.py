"""API-key authentication, compared in constant time."""

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader

from fbt_tasks.settings import Settings

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API_KEY setting.")

# The dependencies here and in deps.py are async because they never block: FastAPI runs every sync dependency on
# a threadpool hop of its own, which cost more per request than the whole enqueue.


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def require_api_key(request: Request, key: Annotated[str | None, Depends(api_key_header)]) -> None:
    # The settings are read off the app directly: one dependency less to solve on every request.
    expected = request.app.state.settings.effective_api_key
    if key is None or not secrets.compare_digest(key.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="Missing or invalid X-API-Key header",
            headers={"WWW-Authenticate": "APIKey"},
        )


async def get_current_user(_: Annotated[None, Depends(require_api_key)]) -> dict[str, str]:
    """The tutorial's ``get_current_user``, minus its hard-coded token: the key holder is the admin."""
    return {"username": "admin"}
