"""End to end, over HTTP, for every backend: real Redis, a real SMTP sink, real API and worker processes."""

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from fbt_devstack.smtp_sink import read_mailbox
from fbt_devstack.stack import Stack
from fbt_tasks.registry import configure, installed_runners, load_runner
from fbt_tasks.settings import Settings

BACKENDS = installed_runners()

pytestmark = pytest.mark.e2e
KEY = "e2e-key-not-a-secret"
SAFETY_TIMEOUT_S = 60  # a safety net against hangs, not a performance assertion


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = configure(
        Settings(backend=request.param, api_key=KEY, port=0, worker_processes=1, worker_threads=2)
    )
    with Stack(settings, workdir=tmp_path_factory.mktemp(request.param)) as running:
        yield running


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, headers={"X-API-Key": KEY}, timeout=10) as client:
        yield client


def wait_for_state(api: httpx.Client, job_id: str, state: str = "succeeded") -> None:
    deadline = time.monotonic() + SAFETY_TIMEOUT_S
    seen = None
    while time.monotonic() < deadline:
        seen = api.get(f"/jobs/{job_id}").json().get("state")
        if seen == state:
            return
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} is {seen!r}, never {state!r}")


def test_tutorial_send_mail_arrives_at_the_sink(stack: Stack, api: httpx.Client) -> None:
    response = api.post("/send-mail/", params={"email": "a@example.com"})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "Email to a@example.com is being sent in background"
    assert body["backend"] == stack.backend
    wait_for_state(api, body["job_id"])
    mails = [m for m in read_mailbox(stack.mailbox_path) if body["job_id"] in (m.message_id or "")]
    assert len(mails) == 1
    assert mails[0].to == ["a@example.com"] and mails[0].subject == "Welcome!"


def test_200_concurrent_log_requests_give_200_intact_lines(stack: Stack) -> None:
    marker = f"e2e-{stack.backend}-"

    async def burst() -> list[str]:
        async with httpx.AsyncClient(
            base_url=stack.api_url, headers={"X-API-Key": KEY}, timeout=30
        ) as client:
            responses = await asyncio.gather(
                *(client.post("/log/", params={"msg": f"{marker}{i:03d}" + "." * 500}) for i in range(200))
            )
        assert all(r.status_code == 200 for r in responses)
        return [r.json()["job_id"] for r in responses]

    job_ids = asyncio.run(burst())
    with httpx.Client(base_url=stack.api_url, headers={"X-API-Key": KEY}) as api:
        for job_id in job_ids:
            wait_for_state(api, job_id)
    ours = [line for line in stack.log_path.read_text().splitlines() if line.startswith(marker)]
    assert sorted(ours) == [f"{marker}{i:03d}" + "." * 500 for i in range(200)]


def test_image_is_resized(stack: Stack, api: httpx.Client) -> None:
    out = stack.settings.media_dir / "out"
    before = set(out.glob("*.jpg"))
    response = api.post(
        "/resize", json={"width": 640, "height": 480, "target_width": 64, "target_height": 47}
    )
    job_id = response.json()["job_id"]
    wait_for_state(api, job_id)
    # The API names the output itself and does not return it; nothing else resizes in this module, so the
    # one file this job added is its output (an odd target size no other test uses, checked below).
    [output] = set(out.glob("*.jpg")) - before
    with Image.open(output) as image:
        assert image.size == (64, 47)


def test_notify_uses_the_auth_dependency(stack: Stack, api: httpx.Client) -> None:
    assert httpx.post(f"{stack.api_url}/notify/").status_code == 401
    job_id = api.post("/notify/").json()["job_id"]
    wait_for_state(api, job_id)
    assert "Notification sent to admin" in stack.log_path.read_text()


def test_broker_down_is_a_quick_503_and_nothing_is_half_enqueued(stack: Stack, api: httpx.Client) -> None:
    runner = load_runner(stack.backend)
    if stack.settings.broker_name == "none":
        pytest.skip(f"{runner.display_name} has no broker to lose")
    assert stack.redis is not None
    stack.redis.stop()
    try:
        response = api.post("/log/", params={"msg": "while-redis-is-down"})
        assert response.status_code == 503
        assert "Broker unavailable" in response.json()["detail"]
        health = api.get("/health")
        assert health.status_code == 503 and health.json()["broker"] == "down"
    finally:
        stack.redis.start()
    # After the broker is back, the API recovers without a restart.
    deadline = time.monotonic() + SAFETY_TIMEOUT_S
    while api.get("/health").status_code != 200:
        assert time.monotonic() < deadline, "API did not see Redis come back"
        time.sleep(0.2)
    job_id = api.post("/log/", params={"msg": "after-redis-is-back"}).json()["job_id"]
    wait_for_state(api, job_id)
    assert "while-redis-is-down" not in stack.log_path.read_text()
