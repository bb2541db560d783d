"""Property-based fuzzing of the API from its own OpenAPI schema (schemathesis, on the in-process backend).

No 5xx is allowed (the documented 503 needs a dead broker, which the in-process backend does not have),
and every 4xx carries a message.
"""

from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from fbt_api.app import create_app
from fbt_tasks.settings import Settings

KEY = "fuzz-key"


def make_schema() -> schemathesis.BaseSchema:
    # Small images keep each accepted resize cheap; the pixel limit itself is among what is fuzzed.
    app = create_app(Settings(backend="inprocess", api_key=KEY, max_image_pixels=250_000))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


LABELS = [result.ok().label for result in make_schema().get_all_operations()]


@pytest.mark.parametrize("label", LABELS)
def test_no_server_errors_and_every_client_error_explains_itself(task_env: Path, label: str) -> None:
    schema = make_schema()  # built after task_env, so uploads and outputs land in the test's temp dir
    operation = next(r.ok() for r in schema.get_all_operations() if r.ok().label == label)

    @given(case=operation.as_strategy())
    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case) -> None:
        case.headers = {**(case.headers or {}), "X-API-Key": KEY}
        response = case.call()
        assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
        if 400 <= response.status_code < 500:
            assert response.json().get("detail"), response.text

    with TestClient(schema.app):  # runs the lifespan, which attaches the backend to the app
        check()
