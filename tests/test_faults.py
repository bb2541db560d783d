"""Exactly-once email under real kills, for every broker runner in its safe configuration.

Each runner gets a real stack (embedded Redis, API, ``fbt-worker-<runner>``, the project's SMTP sink).
Mid-batch the worker's whole process tree is SIGKILLed and started again; then every email must have arrived
at the sink exactly once, counted by Message-ID in its mailbox: none lost (at-least-once delivery brought the
killed jobs back) and none twice (``fbt_tasks.once`` skipped the redelivered sends).

One worker slot and a 300 ms sink make the kill land mid-send by construction: ``run_cell`` kills 20-80 % of
an SMTP delay (drawn from the trial's seed) after the next send took its send-once lease, when the only sender is
inside its SMTP exchange (its send-once lease held,
the email not yet accepted). That is the case the guard exists for; the residual window once.py documents (a
crash between the SMTP server's "250" and the sent record) is a few milliseconds the kill never aims at here.

The three runners run at once: each cell is mostly waiting on its library's redelivery timeout (RQ's is the
longest, ~65-80 s), so in parallel the whole file takes about as long as RQ alone. Nothing here is timed;
the timeouts are safety nets.
"""

import os
import smtplib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from runner_support import KILL_MID_SEND, assert_every_email_once

from fbt_bench.faults.model import FULL, Cell, FaultParams, FaultRun
from fbt_bench.faults.observe import deliveries
from fbt_bench.faults.run import run_cell
from fbt_bench.measuring.environment import describe_runner
from fbt_bench.schema import load_schema
from fbt_devstack import netns
from fbt_devstack.sink import Sink, smtp_sink
from fbt_tasks.registry import configure, load_runner
from fbt_tasks.settings import Settings

pytestmark = pytest.mark.e2e

BROKER_RUNNERS = ("celery", "rq", "dramatiq")
PARAMS = KILL_MID_SEND


@pytest.fixture(scope="module")
def killed_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FaultRun]:
    root = tmp_path_factory.mktemp("faults")
    with ThreadPoolExecutor(max_workers=len(BROKER_RUNNERS)) as pool:
        futures = {
            runner: pool.submit(run_cell, Cell(runner, "safe", "kill-worker"), PARAMS, root / runner)
            for runner in BROKER_RUNNERS
        }
        return {runner: future.result() for runner, future in futures.items()}


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("runner", BROKER_RUNNERS)
def test_sigkilled_worker_delivers_every_email_exactly_once(killed_runs: dict[str, FaultRun], runner: str):
    run = killed_runs[runner]
    assert_every_email_once(run)
    assert run.record["trial"] == 1 and run.record["seed"] == Cell(runner, "safe", "kill-worker").seed(
        PARAMS.seed
    )


@pytest.mark.slow
def test_fault_records_match_the_results_schema(killed_runs: dict[str, FaultRun]):
    schema = load_schema()
    fault_schema = {"$defs": schema["$defs"], "$ref": "#/$defs/fault"}
    for run in killed_runs.values():
        Draft202012Validator(fault_schema).validate(run.record)
        assert run.record["mechanism"] and run.record["recovery_s"] is not None


@pytest.mark.parametrize("runner", BROKER_RUNNERS)
def test_safe_configuration_redelivers_within_a_run_and_defaults_do_not(runner: str):
    """The watch windows come from each runner's describe(); this also catches a renamed describe key."""
    bound = load_runner(runner).faults.redelivery_bound_s
    safe = bound(describe_runner(configure(Settings(backend=runner, queue_config="safe"))))
    defaults = bound(describe_runner(configure(Settings(backend=runner, queue_config="defaults"))))
    assert safe is not None and 0 < safe <= FULL.patience_s
    assert defaults is None or defaults > FULL.patience_s


def test_sink_refuses_the_first_deliveries_of_each_message_then_accepts(tmp_path: Path):
    def send(sink: Sink, message_id: str, to: str = "user@example.com") -> int:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "a@example.com", to, "s"
        message["Message-ID"] = f"<{message_id}@fbt.localhost>"
        message.set_content("body")
        try:
            with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as smtp:
                smtp.send_message(message)
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code
        return 250

    with smtp_sink(tmp_path, delay_ms=0, fail_first=2, always_fail_to="poison") as sink:
        assert [send(sink, "flaky") for _ in range(3)] == [451, 451, 250]
        assert send(sink, "other") == 451  # counted per Message-ID
        assert [send(sink, "poison", to="poison@example.com") for _ in range(4)] == [451] * 4
        assert deliveries(sink.mailbox) == Counter({"flaky": 1})


NEW_FAULT_PARAMS = FaultParams(
    n=12, fault_after=4, smtp_delay_ms=100, worker_processes=1, worker_threads=2, burst_concurrency=2,
    smtp_timeout_s=3.0, api_threadpool=4, trials=1, followers_n=4, delayed_n=2, delay_s=5.0, max_delay_s=70.0,
)  # fmt: skip


@pytest.fixture(scope="module")
def new_fault_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], FaultRun]:
    root = tmp_path_factory.mktemp("new-faults")
    cells = [
        Cell(runner, "safe", fault, "always" if fault == "broker-crash" else "")
        for runner in BROKER_RUNNERS
        for fault in ("broker-crash", "broker-full", "api-deploy", "delay-past-timeout", "poison-message")
    ]
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {
            (c.runner, c.fault): pool.submit(run_cell, c, NEW_FAULT_PARAMS, root / c.tag.replace("/", "-"))
            for c in cells
        }
        return {key: future.result() for key, future in futures.items()}


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("runner", BROKER_RUNNERS)
def test_new_faults_are_measured_to_the_end(new_fault_runs: dict[tuple[str, str], FaultRun], runner: str):
    schema = load_schema()
    fault_schema = {"$defs": schema["$defs"], "$ref": "#/$defs/fault"}
    for fault in ("broker-crash", "broker-full", "api-deploy", "delay-past-timeout", "poison-message"):
        record = new_fault_runs[(runner, fault)].record
        Draft202012Validator(fault_schema).validate(record)
        assert record["mechanism"], record
    # appendfsync always: an acknowledged enqueue survives a SIGKILLed Redis.
    crash = new_fault_runs[(runner, "broker-crash")].record
    assert crash["appendfsync"] == "always", crash
    if runner == "celery" and crash["lost"]:
        # Not the AOF: kombu pops with BRPOP and records the unacked copy in a second command; a SIGKILL that
        # lands between the two loses that message (rare; seen once under heavy load). The report says so.
        assert "kombu" in crash["mechanism"], crash
        pytest.xfail(f"Celery lost {crash['lost']} in kombu's BRPOP-then-record window")
    assert crash["lost"] == 0, crash
    # A delayed job runs at least once and never sends its email twice (the guard skips repeats).
    delayed = new_fault_runs[(runner, "delay-past-timeout")].record
    assert delayed["executions"]["min"] >= 1 and delayed["duplicate_effects"] == 0, delayed
    # The malformed message did not stop the worker: every good email after it arrived.
    poisoned = new_fault_runs[(runner, "poison-message")].record
    assert poisoned["poison"]["worker_kept_working"] and poisoned["lost"] == 0, poisoned
    # Replacing the API loses nothing a broker runner accepted: every job was in the broker before its 200.
    redeployed = new_fault_runs[(runner, "api-deploy")].record
    assert redeployed["lost"] == 0 and redeployed["held"] == 0 and redeployed["expected"] > 0, redeployed
    # A full Redis: the API answered every request (200, or a 503 the client can retry), none hung.
    full = new_fault_runs[(runner, "broker-full")].record
    assert full["outage"]["requests"] > 0 and full["outage"]["answers"]["hang"] == 0, full
    if full["lost"]:
        # A measured outcome the report shows, not a promise the project can keep for the library: Celery's
        # (kombu's unrecorded unacked copy) and Dramatiq's (the Retries middleware's refused copy) are named in
        # their sentences; RQ lost one once in CI, its cause not yet pinned down.
        pytest.xfail(f"{runner} lost {full['lost']} while Redis was full: {full['mechanism']}")


LINK_PARAMS = replace(NEW_FAULT_PARAMS, slow_n=40, partition_s=20.0)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.skipif(netns.unavailable_reason() is not None, reason=str(netns.unavailable_reason()))
def test_a_cut_or_a_slow_link_loses_nothing_dramatiq_accepted_and_leaves_no_namespace(tmp_path: Path):
    """The network faults on the hosts topology, Dramatiq's safe config (the shortest redelivery bound): the
    API refuses while cut off, nothing accepted is lost, and every namespace goes."""
    cells = [
        Cell("dramatiq", "safe", "partition", "workers"),
        Cell("dramatiq", "safe", "partition", "api"),
        Cell("dramatiq", "safe", "slow-link"),
    ]
    with ThreadPoolExecutor(max_workers=len(cells)) as pool:
        futures = [pool.submit(run_cell, c, LINK_PARAMS, tmp_path / c.tag.replace("/", "-")) for c in cells]
        workers, api, slow = (future.result().record for future in futures)
    schema = load_schema()
    fault_schema = {"$defs": schema["$defs"], "$ref": "#/$defs/fault"}
    for record in (workers, api, slow):
        Draft202012Validator(fault_schema).validate(record)
        assert record["lost"] == 0 and record["expected"] > 0, record
    assert workers["cut_s"] > load_runner("dramatiq").faults.redelivery_bound_s(workers["configuration"]), (
        workers
    )
    # Refused while cut off, for the client to retry. How fast is not asserted: a hang is the probe's 10 s
    # timeout, a wall clock, and with this test's 4 API threads each held 2 s by a dropped connect, requests
    # queue (the fault pass measures it and the report says so).
    assert api["outage"]["requests"] > 0 and api["outage"]["answers"]["503"] > 0, api
    assert slow["throughput"]["clean_per_s"] > 0 and slow["throughput"]["slow_per_s"] > 0, slow
    assert not [name for name in netns.our_namespaces() if name.startswith(f"{netns.PREFIX}{os.getpid()}")]
