"""The benchmark's HTTP client: the same public API calls a user would make, over a bounded pool."""

import importlib.util
import sys
from types import TracebackType
from typing import Any

import httpx

from fbt_bench.measuring.loadgen import Outcome

if importlib.util.find_spec("sniffio") is None:
    # httpcore tries ``import sniffio`` each time it creates a lock (about ten per request) and Python does
    # not cache a failed import, so without sniffio installed every attempt rescans sys.path: milliseconds of CPU
    # per request, enough to make the load generator the bottleneck. Caching the miss keeps httpcore's
    # behaviour exactly (no sniffio: asyncio) at no cost.
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]  # None marks a failed import

# Generous next to any healthy response; a request that takes longer is an error, not a data point.
REQUEST_TIMEOUT_S = 30.0

# What a call raises when no answer came in time, and when none came at all (refused, reset, timed out).
RequestTimeout = httpx.TimeoutException
RequestError = httpx.HTTPError


class ApiClient:
    """An ``httpx.AsyncClient`` with at most ``connections`` sockets; extra requests wait for a free one.

    ``timeout_s`` bounds each request; a call that takes longer raises ``RequestTimeout`` (the fault pass
    counts that as a hang).
    """

    def __init__(
        self, base_url: str, api_key: str, *, connections: int, timeout_s: float = REQUEST_TIMEOUT_S
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers={"X-API-Key": api_key},
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            timeout=httpx.Timeout(timeout_s),
        )

    async def __aenter__(self) -> "ApiClient":
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._client.aclose()

    async def log(self, message: str) -> Outcome:
        return await self._enqueue("/log/", {"msg": message})

    async def send_mail(self, email: str, subject: str, body: str) -> Outcome:
        return await self._enqueue("/send-mail/", {"email": email, "subject": subject, "body": body})

    async def resize(
        self, width: int, height: int, target_width: int, target_height: int, seed: int
    ) -> Outcome:
        spec = {
            "width": width,
            "height": height,
            "target_width": target_width,
            "target_height": target_height,
        }
        return await self._enqueue("/resize", {**spec, "seed": seed})

    async def health(self) -> Outcome:
        response = await self._client.get("/health")
        return Outcome(ok=response.status_code == 200, status=response.status_code)

    async def enqueue_cost(self) -> tuple[int, float]:
        """(enqueue calls, thread CPU seconds inside them) the API process has spent since it started."""
        response = await self._client.get("/health/enqueue-cost")
        response.raise_for_status()
        body = response.json()
        return int(body["enqueues"]), float(body["cpu_s"])

    async def job_state(self, job_id: str) -> str:
        """What GET /jobs/{id} says: the job's state, or the HTTP status when it did not answer 200."""
        response = await self._client.get(f"/jobs/{job_id}")
        return str(response.json()["state"]) if response.status_code == 200 else str(response.status_code)

    async def _enqueue(self, path: str, body: dict[str, Any]) -> Outcome:
        response = await self._client.post(path, json=body)
        if response.status_code != 200:
            return Outcome(
                ok=False,
                status=response.status_code,
                error=f"HTTP {response.status_code}: {response.text[:200]}",
            )
        return Outcome(ok=True, status=200, job_id=response.json()["job_id"])
