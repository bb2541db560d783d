"""The open-loop generator against a real tiny server (uvicorn + Starlette in a subprocess).

Correctness only: every planned request is accounted for, answers land on the right index, errors are
counted by kind. No wall-clock thresholds: the machine is shared and its timings are noisy.
"""

import asyncio
import math
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from fbt_bench.measuring.httpwire import ResponseReader
from fbt_bench.measuring.openloop import (
    LATE,
    TRANSPORT_ERROR,
    OpenLoopResult,
    OpenLoopSpec,
    run_open_loop,
    run_open_loop_async,
    schedule,
)
from fbt_devstack.ports import free_port, wait_for_port

APP = textwrap.dedent(
    """
    import asyncio
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    async def log(request):
        if request.headers.get("x-api-key") != "secret":
            return JSONResponse({"detail": "no key"}, status_code=401)
        msg = (await request.json())["msg"]
        return JSONResponse({"status": "queued", "job_id": "job:" + msg, "backend": "test"})

    async def fail(request):
        return JSONResponse({"detail": "unavailable"}, status_code=503)

    async def slow(request):
        await asyncio.sleep(float(request.query_params.get("s", "0.5")))
        return PlainTextResponse("late")

    app = Starlette(routes=[
        Route("/log/", log, methods=["POST"]),
        Route("/fail/", fail, methods=["POST"]),
        Route("/slow/", slow, methods=["POST"]),
    ])
    """
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app_dir = tmp_path_factory.mktemp("openloop_app")
    (app_dir / "tiny_app.py").write_text(APP)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(app_dir), "tiny_app:app", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout_s=20)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def spec(base_url: str, **overrides: object) -> OpenLoopSpec:
    fields: dict = {
        "rate_hz": 200.0,
        "duration_s": 0.5,
        "headers": {"X-API-Key": "secret"},
        "timeout_s": 10.0,
    }
    return OpenLoopSpec(base_url=base_url, **{**fields, **overrides})


def assert_accounted(result: OpenLoopResult) -> None:
    assert result.ok + result.errors + result.late == result.planned
    assert result.sent == result.planned - result.late
    assert sum(result.errors_by_kind.values()) == result.errors
    for column in (result.intended_s, result.sent_s, result.latency_s, result.status, result.job_ids):
        assert len(column) == result.planned
    assert result.cpu_s > 0
    assert result.cpu_us_per_request == pytest.approx(result.cpu_s * 1e6 / max(result.sent, 1))
    assert result.wakeups >= 0 and result.startup_cpu_s > 0


def test_every_request_is_answered_timed_from_its_intended_send(server: str) -> None:
    result = run_open_loop(spec(server))
    assert_accounted(result)
    assert result.planned == 100
    assert result.ok == 100 and result.errors == 0 and result.late == 0
    # The body's index marker was filled per request, and each answer landed on its own request.
    assert result.job_ids == [f"job:open loop #{i}" for i in range(100)]
    assert result.ok_job_ids() == result.job_ids
    assert list(result.intended_s) == [i / 200.0 for i in range(100)]
    for intended, sent, latency in zip(result.intended_s, result.sent_s, result.latency_s, strict=True):
        assert sent >= intended  # never early
        assert latency >= sent - intended >= 0  # from the intended time, so any send lag is included
    assert set(result.status) == {200}
    assert result.most_connections >= 1
    assert result.loop == "uvloop"


def test_cpu_is_counted_over_the_window_with_its_wake_ups(server: str) -> None:
    # Five requests 50 ms apart: the generator must sleep between them, so each gap is a wake-up of its
    # own, inside the measured window; start-up (interpreter, imports) is reported apart, once per run.
    result = run_open_loop(spec(server, rate_hz=20.0, duration_s=0.25))
    assert_accounted(result)
    assert result.ok == result.planned == 5
    assert result.wakeups >= result.sent - 1
    assert result.wakeups_per_request == pytest.approx(result.wakeups / result.sent)
    assert result.elapsed_s >= result.intended_s[-1]


def test_server_errors_are_counted_by_status_with_samples(server: str) -> None:
    result = run_open_loop(spec(server, path="/fail/", duration_s=0.25))
    assert_accounted(result)
    assert result.ok == 0 and result.errors == result.planned == 50
    assert result.errors_by_kind == {"http 503": 50}
    assert 0 < len(result.error_samples) <= 5 and "unavailable" in result.error_samples[0]
    assert set(result.status) == {503}
    assert result.ok_job_ids() == [] and result.ok_latencies_s() == []


def test_a_missing_header_is_an_http_error_too(server: str) -> None:
    result = run_open_loop(spec(server, headers={}, duration_s=0.1))
    assert_accounted(result)
    assert result.errors_by_kind == {"http 401": result.planned}


def test_a_closed_port_counts_connect_errors() -> None:
    result = run_open_loop(spec(f"http://127.0.0.1:{free_port()}", duration_s=0.25))
    assert_accounted(result)
    assert result.ok == 0 and result.late == 0
    assert result.errors_by_kind == {"connect ConnectionRefusedError": 50}
    assert set(result.status) == {TRANSPORT_ERROR}
    assert all(math.isnan(latency) for latency in result.latency_s)


def test_requests_due_while_every_connection_is_busy_are_late_not_queued(server: str) -> None:
    # Ten requests 20 ms apart, each answered after 0.5 s, through at most two connections.
    result = run_open_loop(spec(server, path="/slow/?s=0.5", rate_hz=50.0, duration_s=0.2, max_connections=2))
    assert_accounted(result)
    assert (result.planned, result.ok, result.late) == (10, 2, 8)
    assert list(result.status) == [200, 200] + [LATE] * 8
    assert all(math.isnan(result.sent_s[i]) and math.isnan(result.latency_s[i]) for i in range(2, 10))
    assert result.most_connections == 2


def test_no_answer_within_the_timeout_is_an_error(server: str) -> None:
    result = run_open_loop(spec(server, path="/slow/?s=2", rate_hz=20.0, duration_s=0.1, timeout_s=0.2))
    assert_accounted(result)
    assert result.errors_by_kind == {"timeout": 2}


def test_stop_ends_the_schedule_early_and_accounts_for_what_was_due(server: str) -> None:
    async def stopped_run() -> OpenLoopResult:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(1.0, stop.set)
        return await run_open_loop_async(spec(server, rate_hz=50.0, duration_s=60.0), stop)

    result = asyncio.run(stopped_run())
    assert_accounted(result)
    assert 0 < result.planned < 3000
    assert result.ok == result.planned


def test_asyncio_loop_and_pinning_option(server: str) -> None:
    result = run_open_loop(spec(server, use_uvloop=False, pin_cpu=True, duration_s=0.1))
    assert_accounted(result)
    assert result.loop == "asyncio" and result.ok == result.planned
    cores = len(os.sched_getaffinity(0))
    assert result.placement["pinned"] is (cores >= 3)
    assert len(result.placement["cpus"]) == (1 if cores >= 3 else cores)


def test_poisson_schedule_is_seeded_and_within_the_duration() -> None:
    base = OpenLoopSpec(base_url="http://x", rate_hz=1000.0, duration_s=2.0, poisson_seed=7)
    first, again = schedule(base), schedule(base)
    other = schedule(OpenLoopSpec(base_url="http://x", rate_hz=1000.0, duration_s=2.0, poisson_seed=8))
    assert list(first) == list(again) != list(other)
    assert list(first) == sorted(first) and 0 <= first[0] and first[-1] < 2.0
    assert 1700 < len(first) < 2300  # 2000 expected; Poisson spread is ~45


@pytest.mark.parametrize(
    "chunks",
    [
        [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"],
        [b"HTTP/1.1 200 OK\r\nconTent-length:5\r\n", b"\r\nhel", b"lo"],
        [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n", b"2;x=y\r\nlo\r\n0\r\n\r\n"],
    ],
)
def test_reader_frames_a_body_however_it_is_split(chunks: list[bytes]) -> None:
    reader = ResponseReader()
    results = [reader.feed(chunk) for chunk in chunks]
    assert results[:-1] == [None] * (len(chunks) - 1)
    assert results[-1] is not None
    assert (results[-1].status, results[-1].body, results[-1].keep_alive) == (200, b"hello", True)


def test_reader_connection_close_and_bodiless_answers() -> None:
    reader = ResponseReader()
    closing = reader.feed(b"HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    assert closing is not None and (closing.status, closing.keep_alive) == (503, False)
    reader.expect()
    assert reader.feed(b"HTTP/1.1 200 OK\r\n\r\nuntil") is None  # no framing: the body runs to EOF
    until_eof = reader.eof()
    assert until_eof is not None and (until_eof.body, until_eof.keep_alive) == (b"until", False)
    reader.expect()
    no_content = reader.feed(b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n")
    assert no_content is not None and no_content.body == b""
    reader.expect(head_request=True)
    head = reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n")
    assert head is not None and head.body == b""


def test_the_module_runs_as_a_script_and_rejects_an_empty_spec(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fbt_bench.measuring.openloop"], input=b"", capture_output=True, check=False
    )
    assert proc.returncode != 0 and b"no spec" in proc.stderr
