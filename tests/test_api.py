"""The API contract, the same for every backend: auth, validation, limits. Runs on the in-process backend."""

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from fbt_api.app import MAX_BODY_BYTES, create_app
from fbt_api.schemas import MAX_MESSAGE_CHARS
from fbt_tasks import ledger
from fbt_tasks.settings import Settings

KEY = "test-key-not-a-secret"
AUTH = {"X-API-Key": KEY}


@pytest.fixture
def client(task_env: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(backend="inprocess", api_key=KEY))) as c:
        yield c


def ledger_ids(task_env: Path) -> set[str]:
    return {e.id for e in ledger.read_events(task_env / "ledger.jsonl")}


ENQUEUE_CALLS = [
    ("post", "/log/?msg=hi", None),
    ("post", "/send-mail/?email=a@example.com", None),
    ("post", "/notify/", None),
    ("post", "/resize", {"width": 64, "height": 64, "target_width": 8, "target_height": 8}),
]


@pytest.mark.parametrize(("method", "url", "body"), ENQUEUE_CALLS)
@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}])
def test_every_enqueue_route_needs_the_key(
    client: TestClient, task_env: Path, method, url, body, headers
) -> None:
    response = client.request(method, url, json=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["detail"] == "Missing or invalid X-API-Key header"
    assert ledger_ids(task_env) == set()


def test_tutorial_routes_answer_as_the_tutorial_does(client: TestClient, task_env: Path) -> None:
    log = client.post("/log/?msg=hello", headers=AUTH).json()
    assert log["status"] == "Message logged in background" and log["backend"] == "inprocess"
    mail = client.post("/send-mail/?email=a@example.com", headers=AUTH).json()
    assert mail["status"] == "Email to a@example.com is being sent in background"
    assert client.post("/notify/", headers=AUTH).json()["status"] == "Notification scheduled"
    # TestClient runs BackgroundTasks before returning, so every job is already recorded.
    assert {log["job_id"], mail["job_id"]} <= ledger_ids(task_env)
    assert client.get(f"/jobs/{log['job_id']}", headers=AUTH).json()["state"] == "succeeded"


def test_json_body_variants(client: TestClient) -> None:
    assert client.post("/log/", json={"msg": "from json"}, headers=AUTH).status_code == 200
    sent = client.post("/send-mail/", json={"email": "b@example.com", "subject": "Hi"}, headers=AUTH)
    assert sent.json()["status"] == "Email to b@example.com is being sent in background"


def _png(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, "blue").save(buf, format="PNG")
    return buf.getvalue()


def test_resize_upload(client: TestClient) -> None:
    files = {"file": ("a.png", _png((120, 80)), "image/png")}
    response = client.post(
        "/resize/upload", files=files, data={"target_width": "12", "target_height": "8"}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    assert client.get(f"/jobs/{response.json()['job_id']}", headers=AUTH).json()["state"] == "succeeded"


BAD_INPUTS = [
    ("/log/?msg=", None, "at least 1 character"),
    ("/log/?msg=%20%20", None, "at least 1 character"),
    (f"/log/?msg={'x' * (MAX_MESSAGE_CHARS + 1)}", None, f"at most {MAX_MESSAGE_CHARS} characters"),
    ("/log/", None, "either as a query parameter or in a JSON body"),
    ("/log/?msg=a", {"msg": "b"}, "not both"),
    ("/send-mail/?email=not-an-email", None, "valid email address"),
    ("/send-mail/", {"email": "a@"}, "valid email address"),
    ("/send-mail/?email=a@example.com", {"email": "b@example.com"}, "not both"),
    (
        "/resize",
        {"width": 9000, "height": 10, "target_width": 1, "target_height": 1},
        "less than or equal to 8000",
    ),
    ("/resize", {"width": 8000, "height": 8000, "target_width": 1, "target_height": 1}, "40-megapixel"),
    (
        "/resize",
        {"width": 0, "height": 10, "target_width": 1, "target_height": 1},
        "greater than or equal to 1",
    ),
    ("/resize", {"width": 10, "height": 10, "target_width": 20, "target_height": 1}, "only downscales"),
]


@pytest.mark.parametrize(("url", "body", "message"), BAD_INPUTS)
def test_bad_input_is_422_with_a_clear_message_and_nothing_enqueued(
    client: TestClient, task_env: Path, url: str, body: dict | None, message: str
) -> None:
    response = client.post(url, json=body, headers=AUTH)
    assert response.status_code == 422
    assert message in response.text
    assert ledger_ids(task_env) == set()


def test_not_an_image_upload_is_422(client: TestClient, task_env: Path) -> None:
    files = {"file": ("a.png", b"definitely not a png", "image/png")}
    response = client.post("/resize/upload", files=files, headers=AUTH)
    assert response.status_code == 422 and "not a readable PNG or JPEG" in response.text
    assert ledger_ids(task_env) == set()


def test_oversized_body_is_413_before_anything_is_read(client: TestClient, task_env: Path) -> None:
    body = b'{"msg": "' + b"x" * MAX_BODY_BYTES + b'"}'
    response = client.post("/log/", content=body, headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 413
    assert "exceeds" in response.json()["detail"]
    assert ledger_ids(task_env) == set()


def test_chunked_oversized_body_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"msg": "'
        for _ in range(MAX_BODY_BYTES // 1024 + 2):
            yield b"x" * 1024
        yield b'"}'

    response = client.post("/log/", content=chunks(), headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 413


def test_unknown_and_malformed_job_ids(client: TestClient) -> None:
    assert client.get(f"/jobs/{'0' * 32}", headers=AUTH).status_code == 404
    assert client.get("/jobs/not-a-job", headers=AUTH).status_code == 422


def test_health_needs_no_key(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok", "backend": "inprocess", "broker": "up"}


def test_enqueue_cost_counts_each_enqueue_and_needs_the_key(client: TestClient) -> None:
    assert client.get("/health/enqueue-cost").status_code == 401
    before = client.get("/health/enqueue-cost", headers=AUTH).json()
    for i in range(3):
        assert client.post("/log/", params={"msg": f"cost {i}"}, headers=AUTH).status_code == 200
    after = client.get("/health/enqueue-cost", headers=AUTH).json()
    assert after["enqueues"] - before["enqueues"] == 3
    assert after["cpu_s"] >= before["cpu_s"]


def test_dev_key_refuses_non_loopback_bind(monkeypatch: pytest.MonkeyPatch) -> None:
    from fbt_api import __main__ as api_main
    from fbt_tasks.settings import get_settings

    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("BACKEND", "inprocess")
    monkeypatch.delenv("API_KEY", raising=False)
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as exit_info:
            api_main.serve()
        assert exit_info.value.code == 2
    finally:
        get_settings.cache_clear()
    assert (
        api_main.is_loopback("127.0.0.1")
        and api_main.is_loopback("::1")
        and not api_main.is_loopback("0.0.0.0")
    )


def test_control_characters_and_invalid_utf8_cannot_forge_log_lines(
    client: TestClient, task_env: Path
) -> None:
    hostile = ["a\nforged", "b\r\nforged", "c\x00\x1b[31m", "%FF%FEd", "e\u2028f"]
    for msg in hostile:
        assert client.post("/log/", params={"msg": msg}, headers=AUTH).status_code == 200
    # Raw bytes that are not UTF-8 at all, percent-encoded the way a hostile client would send them.
    assert client.post("/log/?msg=%FF%FE%0Ag", headers=AUTH).status_code == 200
    hostile.append("g")
    lines = (task_env / "log.txt").read_bytes().split(b"\n")[:-1]
    assert len(lines) == len(hostile)
    assert all(b"\r" not in line and b"\x00" not in line and b"\x1b" not in line for line in lines)


# --- issue #10: text that would break a mail header is refused before anything is enqueued ---

LINE_BREAKERS = {"CR": "\r", "LF": "\n", "NUL": "\x00"}


def _header_cases() -> list:
    """(route, query params, JSON body) with each hostile character in each mail-header field and form."""
    cases = []
    for name, ch in LINE_BREAKERS.items():
        cases += [
            pytest.param({"email": f"a{ch}@example.com"}, None, "email", id=f"query-email-{name}"),
            pytest.param({"email": f"a@example.com{ch}"}, None, "email", id=f"query-email-trailing-{name}"),
            pytest.param(None, {"email": f"a{ch}@example.com"}, "email", id=f"json-email-{name}"),
            pytest.param(None, {"email": f"{ch}a@example.com"}, "email", id=f"json-email-leading-{name}"),
            pytest.param(
                None,
                {"email": "a@example.com", "subject": f"Hi{ch}Bcc: x@evil.test"},
                "subject",
                id=f"json-subject-{name}",
            ),
            # Trailing too: stripping whitespace must not launder a line break into an accepted subject.
            pytest.param(
                None,
                {"email": "a@example.com", "subject": f"Hi{ch}"},
                "subject",
                id=f"json-subject-trailing-{name}",
            ),
        ]
    return cases


@pytest.fixture
def enqueued(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> list:
    """Every job handed to the backend, recorded before the backend sees it."""
    jobs: list = []
    backend = client.app.state.backend
    real = backend.schedule  # the in-process backend: each request's view schedules through it

    def record(job, background, delay_s=0.0) -> None:
        jobs.append(job)
        real(job, background, delay_s)

    monkeypatch.setattr(backend, "schedule", record)
    return jobs


@pytest.mark.parametrize(("params", "body", "field"), _header_cases())
def test_line_breaks_in_mail_headers_are_422_and_nothing_is_enqueued(
    client: TestClient, task_env: Path, enqueued: list, params: dict | None, body: dict | None, field: str
) -> None:
    response = client.post("/send-mail/", params=params, json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert [e["loc"][-1] for e in errors] == [field]
    assert any(name in errors[0]["msg"] for name in ("CR (U+000D)", "LF (U+000A)", "NUL (U+0000)")), errors
    assert "mail header" in errors[0]["msg"]
    assert enqueued == [] and ledger_ids(task_env) == set()


@pytest.mark.parametrize("ch", ["\u2028", "\x85", "\x0b", "\x1b", "\ud800"])
def test_other_header_breakers_and_lone_surrogates_are_refused_in_the_subject(
    client: TestClient, enqueued: list, ch: str
) -> None:
    # The email package splits headers on every str.splitlines() break and cannot encode a lone surrogate.
    # Sent as JSON \u escapes: the only way a client can get a lone surrogate through to the API.
    body = json.dumps({"email": "a@example.com", "subject": f"a{ch}b"})
    response = client.post("/send-mail/", content=body, headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 422 and "mail header" in response.text
    assert enqueued == []


def test_mail_body_keeps_line_breaks_but_refuses_nul(
    client: TestClient, task_env: Path, enqueued: list
) -> None:
    ok = client.post("/send-mail/", json={"email": "a@example.com", "body": "Hi,\r\n\nbye\n"}, headers=AUTH)
    assert ok.status_code == 200, ok.text
    assert enqueued[0].payload["body"] == "Hi,\r\n\nbye\n"
    refused = client.post("/send-mail/", json={"email": "a@example.com", "body": "a\x00b"}, headers=AUTH)
    assert refused.status_code == 422 and "NUL (U+0000)" in refused.text
    assert len(enqueued) == 1


@pytest.mark.parametrize("form", ["query", "json"])
@pytest.mark.parametrize("ch", LINE_BREAKERS.values(), ids=LINE_BREAKERS.keys())
def test_log_messages_are_escaped_not_refused(client: TestClient, task_env: Path, form: str, ch: str) -> None:
    # The one field that only reaches a log line: lines.single_line escapes it, so it is accepted (safe_text).
    msg = f"a{ch}forged"
    kwargs = {"params": {"msg": msg}} if form == "query" else {"json": {"msg": msg}}
    assert client.post("/log/", headers=AUTH, **kwargs).status_code == 200
    lines = (task_env / "log.txt").read_bytes().split(b"\n")[:-1]
    assert lines == [msg.encode("unicode_escape")]


def test_upload_filename_never_reaches_a_path(client: TestClient, task_env: Path, enqueued: list) -> None:
    files = {"file": ("../../etc/passwd\r\n\x00.png", _png((20, 20)), "image/png")}
    response = client.post(
        "/resize/upload", files=files, data={"target_width": "2", "target_height": "2"}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    payload = enqueued[0].payload
    assert re.fullmatch(r"in/[0-9a-f]{32}", payload["source"])
    assert re.fullmatch(r"[0-9a-f]{32}\.jpg", payload["output"])


def test_a_422_that_echoes_a_lone_surrogate_is_still_a_422(client: TestClient, enqueued: list) -> None:
    # The 422 body echoes the input; a lone surrogate used to make rendering it raise, turning it into a 500.
    body = json.dumps({"msg": "\ud800" * (MAX_MESSAGE_CHARS + 1)})
    response = client.post("/log/", content=body, headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "msg"]
    assert enqueued == []
