"""The dependencies routes share: what the lifespan put on app.state, and the API-key guard from auth.py."""

from typing import Annotated

from fastapi import BackgroundTasks, Depends, Request
from fastapi.params import Depends as DependsParam

from fbt_api.auth import get_current_user, get_settings_dep, require_api_key
from fbt_tasks.backend import Backend, PerRequest
from fbt_tasks.settings import Settings


async def get_backend(request: Request, background_tasks: BackgroundTasks) -> Backend:
    """The app's backend; where its tasks run after the response, its view bound to this request's tasks."""
    backend: Backend = request.app.state.backend
    return backend.for_request(background_tasks) if isinstance(backend, PerRequest) else backend


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
BackendDep = Annotated[Backend, Depends(get_backend)]
CurrentUser = Annotated[dict[str, str], Depends(get_current_user)]

# For a route's ``dependencies=``: the key is checked, its value is not needed by the handler.
REQUIRE_API_KEY: list[DependsParam] = [Depends(require_api_key)]
