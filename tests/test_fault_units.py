"""The fault pass's parts that need no stack: retry policies, the ledger's skipped mark, the matrix and seeds,
and the report's fault findings. Fast; the real kills are in test_faults.py."""

import json
import smtplib
from pathlib import Path
from typing import Any, ClassVar

import pytest
import redis.exceptions
from bench_fixtures import example_results
from rq.exceptions import AbandonedJobError

from fbt_bench.faults.model import FULL, Cell, matrix, skipped_faults, trial_params
from fbt_bench.faults.observe import HANG_S
from fbt_bench.faults.partition import cut_length_s, silence_bound_s
from fbt_bench.faults.run import Eta
from fbt_bench.faults.trials import identity, outcome_of
from fbt_bench.report import write_reports
from fbt_bench.report.analysis import summarize
from fbt_bench.report.findings import _faults
from fbt_bench.report.tables import faults_layout, side_by_side
from fbt_bench.results import name_brokers
from fbt_celery.tasks import retry_options
from fbt_devstack.delay_proxy import Impairment
from fbt_dramatiq.actors import retry_when
from fbt_rq.jobs import stop_retrying_permanent_errors
from fbt_tasks import jobs
from fbt_tasks.registry import configure, load_runner
from fbt_tasks.retry import TRANSIENT_ERROR_NAMES, TRANSIENT_ERRORS, is_transient, resolve
from fbt_tasks.runner import FaultOutcome
from fbt_tasks.settings import Settings

BROKER_RUNNERS = ("celery", "rq", "dramatiq")


def test_transient_errors_are_named_once_and_resolve_back():
    assert resolve(TRANSIENT_ERROR_NAMES) == TRANSIENT_ERRORS
    assert is_transient(smtplib.SMTPServerDisconnected()) and is_transient(ConnectionRefusedError())
    assert is_transient(redis.exceptions.ConnectionError()) and is_transient(redis.exceptions.TimeoutError())
    # A Redis at its maxmemory refuses a write until it has room again: broker-full's send-once records.
    assert is_transient(
        redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'")
    )
    assert not is_transient(
        ValueError("Header values may not contain linefeed or carriage return characters")
    )


@pytest.mark.parametrize("runner", BROKER_RUNNERS)
def test_safe_configs_retry_only_transient_errors_and_say_so(runner: str):
    plugin = load_runner(runner)
    for broker in plugin.brokers:  # the same rule on every broker the runner supports
        safe = plugin.queue_configs[broker]["safe"]
        assert safe.retries_on == TRANSIENT_ERROR_NAMES
        assert safe.as_record()["retries_on"] == list(TRANSIENT_ERROR_NAMES)


def test_celery_autoretries_only_transient_errors():
    options = retry_options(configure(Settings(backend="celery", queue_config="safe")))
    assert options["autoretry_for"] == TRANSIENT_ERRORS
    assert not any(issubclass(ValueError, error) for error in options["autoretry_for"])


def test_dramatiq_retry_when_checks_the_error_and_the_retry_budget():
    should_retry = retry_when(TRANSIENT_ERRORS, max_retries=2)
    assert should_retry(0, OSError()) and should_retry(1, smtplib.SMTPDataError(451, b"later"))
    assert not should_retry(2, OSError())  # the budget still holds with retry_when set
    assert not should_retry(0, ValueError("bad header"))


class _Job:
    retries_left: int | None = 2


@pytest.mark.parametrize(
    ("error", "retries_left"),
    [(ValueError("bad header"), 0), (OSError("refused"), 2), (AbandonedJobError(), 2)],
)
def test_rq_handler_ends_retries_of_permanent_errors_only(error: BaseException, retries_left: int):
    job = _Job()
    assert stop_retrying_permanent_errors(job, type(error), error, None) is True  # type: ignore[arg-type]
    assert job.retries_left == retries_left


def test_rq_worker_runs_the_handler_in_the_safe_config():
    from fbt_rq.worker import worker_command

    safe = worker_command(configure(Settings(backend="rq", queue_config="safe")))
    assert safe[safe.index("--exception-handler") + 1] == "fbt_rq.jobs.stop_retrying_permanent_errors"
    assert "--exception-handler" not in worker_command(
        configure(Settings(backend="rq", queue_config="defaults"))
    )


def test_ledger_marks_a_task_that_turned_a_repeat_away(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    ledger = tmp_path / "ledger.jsonl"
    monkeypatch.setenv("LEDGER_FILE", str(ledger))
    jobs.get_settings.cache_clear()
    monkeypatch.setitem(jobs.TASKS, "repeat", lambda: False)
    monkeypatch.setitem(jobs.TASKS, "fresh", lambda: None)
    try:
        assert jobs.run_job(jobs.Job("repeat", {}).to_message()) is False  # the return value passes through
        jobs.run_job(jobs.Job("fresh", {}).to_message())
    finally:
        jobs.get_settings.cache_clear()
    events = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert [(e["kind"], e["ok"], e["skipped"]) for e in events] == [
        ("repeat", True, True),
        ("fresh", True, False),
    ]


def test_matrix_runs_broker_faults_only_with_a_broker_and_crashes_under_both_fsync_policies():
    cells = matrix(("inprocess", "celery"), ("safe",), trials=3)
    assert not [
        c
        for c in cells
        if c.runner == "inprocess" and c.fault in ("broker-crash", "broker-full", "poison-message")
    ]
    assert {c.broker_name for c in cells if c.fault == "broker-full"} == {"redis", "rabbitmq"}
    crash = {
        (c.variant, c.trial)
        for c in cells
        if c.runner == "celery" and c.fault == "broker-crash" and c.broker_name == "redis"
    }
    assert crash == {(policy, t) for policy in ("everysec", "always") for t in (1, 2, 3)}
    assert len({c.tag for c in cells}) == len(cells)
    defaults = matrix(("celery",), ("defaults",), trials=1)
    assert {c.fault for c in defaults} == {
        "kill-worker",
        "deploy",
        "broker-restart",
        "task-error",
        "partition",
    }


def test_broker_crash_runs_on_rabbitmq_once_and_nothing_is_skipped():
    cells = matrix(("celery", "dramatiq"), ("safe",), ("broker-crash",), trials=3, brokers=("rabbitmq",))
    assert {(c.runner, c.broker_name, c.variant) for c in cells} == {
        ("celery", "rabbitmq", ""),
        ("dramatiq", "rabbitmq", ""),
    }
    assert len(cells) == 6
    assert skipped_faults(("celery", "dramatiq", "rq"), ("broker-crash",)) == []


def test_eta_scales_the_expected_lengths_by_what_finished_cells_took(monkeypatch: pytest.MonkeyPatch):
    now = [0.0]
    monkeypatch.setattr("fbt_bench.faults.run.time.monotonic", lambda: now[0])
    a, b, c = (Cell("rq", "safe", fault) for fault in ("kill-worker", "deploy", "task-error"))
    eta = Eta({a: 10.0, b: 10.0, c: 20.0}, lanes=2)
    assert eta.left_s() == 20.0  # nothing finished yet: the expectations, over two lanes
    eta.start(a)
    now[0] = 20.0
    assert eta.finish(a) == 20.0  # twice as long as expected: the rest is scaled by 2
    # Over two lanes that would be (2 x 10 + 2 x 20) / 2 = 30 s, but c alone needs 40 s: the longest cell wins.
    assert eta.left_s() == 2 * 20.0
    eta.start(b)
    eta.start(c)
    now[0] = 30.0
    assert eta.left_s() == 2 * 20.0 - 10.0  # c's remaining 30 s, longer than the lanes' share (20 s)
    assert eta.left() == "~30 s left"
    now[0] = 32.0
    eta.finish(b)  # 12 s for an expected 10: the scale becomes (20 + 12) / (10 + 10) = 1.6
    assert eta.left_s() == 1.6 * 20.0 - 12.0


def test_the_report_puts_a_librarys_brokers_side_by_side_and_says_how_cells_ran():
    rows = [
        _fault("celery", "safe", 1, broker="redis"),
        _fault("celery", "safe", 1, broker="redis", fault="deploy"),
        _fault("celery", "safe", 1, broker="rabbitmq"),
        _fault("celery", "safe", 1, broker="rabbitmq", fault="deploy"),
    ]
    ordered = side_by_side([[r] for r in rows])
    assert [(g[0]["fault"], g[0]["broker"]) for g in ordered] == [
        ("kill-worker", "redis"),
        ("kill-worker", "rabbitmq"),
        ("deploy", "redis"),
        ("deploy", "rabbitmq"),
    ]
    results = example_results(faults=False)
    results["faults"] = rows
    results["parameters"]["faults"] = {"worker_processes": 2, "worker_threads": 4, "parallel": 4, "trials": 3}
    results["environment"]["cpu_count"] = 2
    text = faults_layout(results)
    assert (
        text is not None
        and "2 processes x 4 threads = 8 slots" in text
        and "4 stacks at a time on 2 cores" in text
        and "Each trial ran on a fresh stack" in text
    )
    rows[1]["stack"] = "reused"  # deploy ran on the stack kill-worker left clean
    text = faults_layout(results)
    assert text is not None and "3 trials started a stack and 1 ran on the stack an earlier trial" in text


def test_each_trial_draws_its_fault_moment_from_its_own_recorded_seed():
    cells = [Cell("celery", "safe", "kill-worker", trial=t) for t in (1, 2, 3)]
    seeds = [c.seed(42) for c in cells]
    assert len(set(seeds)) == 3 and seeds == [c.seed(42) for c in cells]  # distinct, reproducible
    drawn = [trial_params(FULL, seed) for seed in seeds]
    assert drawn == [trial_params(FULL, seed) for seed in seeds]
    assert all(FULL.n // 8 <= p.fault_after <= FULL.n // 2 and 0.2 <= f <= 0.8 for p, f in drawn)


def _fault(runner: str, config: str, trial: int, **counts: Any) -> dict[str, Any]:
    record = {
        "runner": runner, "config": config, "fault": "kill-worker", "trial": trial, "seed": trial,
        "expected": 30, "lost": 0, "held": 0, "failed": 0, "reexecuted": 0, "duplicate_effects": 0,
        "duplicates": [], "skipped_redeliveries": 0, "recovery_s": 1.0, "refused": 0,
        "mechanism": f"{runner} mechanism", "notes": "",
    }  # fmt: skip
    return record | counts


def test_fault_findings_put_an_in_api_loss_first_and_warn_on_droppable_duplicates():
    results = example_results(faults=False)
    same = [{"recipient": "a@example.com", "copies": 2, "same_message_id": True}]
    results["faults"] = [
        _fault("celery", "safe", 1, duplicate_effects=1, duplicates=same),
        _fault("celery", "safe", 2),
        _fault("rq", "defaults", 1, lost=3),  # a loss outside a safe config: a result, not an alert
        _fault("inprocess", "safe", 1, lost=4),
        _fault("inprocess", "safe", 2, lost=6),
    ]
    found = _faults(summarize(results))
    alerts = [f for f in found if f.kind == "alert"]
    assert len(alerts) == 1 and alerts[0].text.startswith("BackgroundTasks") and "4–6 of 30" in alerts[0].text
    warnings = [f for f in found if f.kind == "warning"]
    assert len(warnings) == 1 and "same Message-ID" in warnings[0].text
    assert any("0–1 duplicate effects" in f.text for f in found if f.kind == "result")


def test_a_cells_trials_share_a_stack_and_nothing_else_does():
    from fbt_bench.faults.run import stack_groups

    cells = matrix(("rq",), ("safe",), trials=3, brokers=("redis",))
    groups = stack_groups(cells)
    assert sorted(c.tag for group in groups for c in group) == sorted(c.tag for c in cells)  # each once
    assert len(groups) == len(cells) // 3
    for group in groups:
        assert [c.trial for c in group] == [1, 2, 3]
        assert len({(c.fault, c.variant) for c in group}) == 1


class _Session:
    """A stand-in stack for run_trials: records which stack each trial ran on; trials in ``fail`` raise."""

    opened: ClassVar[list[Path]] = []
    fail: ClassVar[set[int]] = set()

    def __init__(self, cell: Cell, params: Any, workdir: Path) -> None:
        self.workdir = workdir
        _Session.opened.append(workdir)
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def trial(self, cell: Cell, params: Any, cancel: Any, progress: Any) -> tuple[Any, Any]:
        from fbt_bench.faults.model import FaultRun

        if cell.trial in _Session.fail:
            raise RuntimeError("broken")
        return FaultRun(record={"trial": cell.trial, "notes": ""}, accepted=[], mailbox=self.workdir), cell


def test_trials_reuse_a_clean_stack_and_get_a_fresh_one_after_leftovers_or_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    from fbt_bench.faults import trials

    monkeypatch.setattr(trials, "StackSession", _Session)
    # Trial 2 leaves something behind; trial 4 raises: trials 3 and 5 each start a fresh stack.
    monkeypatch.setattr(trials, "leftovers", lambda cell, record: "held" if cell.trial == 2 else None)
    _Session.opened, _Session.fail = [], {4}
    cells = [Cell("rq", "safe", "kill-worker", trial=t) for t in range(1, 7)]
    ran = list(trials.run_trials(cells, FULL, tmp_path))
    assert [cell.trial for cell, _, _ in ran] == [1, 2, 3, 4, 5, 6]
    assert [type(outcome).__name__ for _, outcome, _ in ran] == ["FaultRun"] * 3 + ["RuntimeError"] + [
        "FaultRun"
    ] * 2
    assert [where.name for _, _, where in ran] == [tmp_path.name] * 2 + ["stack2"] * 2 + ["stack3"] * 2
    assert _Session.opened == [tmp_path, tmp_path / "stack2", tmp_path / "stack3"]
    second = ran[1][1]
    assert not isinstance(second, Exception) and "fresh stack: held" in second.record["notes"]


def _result(**counts: Any) -> FaultOutcome:
    base = {"lost": 0, "failed_attempts": 0, "reexecuted": 0, "unfinished": {}, "watched_s": 60.0}
    return outcome_of({**base, **counts})


def test_a_loss_in_a_safe_config_is_explained_by_its_mechanism_not_by_the_happy_path():
    celery = load_runner("celery").faults
    described = {"broker_name": "redis", "acks_late": True, "visibility_timeout_s": 30, "unacked_sweep_s": 1}
    kept = celery.mechanism("kill-worker", described, _result())
    assert "redelivered" in kept and "never came back" not in kept
    gone = celery.mechanism("kill-worker", described, _result(lost=1))
    assert "1 never came back" in gone and "celery/celery#7950" in gone
    restarted = celery.mechanism("broker-restart", described, _result(lost=1))
    assert "1 gone" in restarted and "celery/celery#7950" in restarted
    assert "gone" not in celery.mechanism("broker-restart", described, _result())

    dramatiq = load_runner("dramatiq").faults
    described = {"broker_name": "redis", "reliability": {"max_retries": 2}}
    fine = dramatiq.mechanism("broker-restart", described, _result())
    assert "gone" not in fine
    lost = dramatiq.mechanism("broker-restart", described, _result(lost=2, failed_attempts=2))
    assert "2 are gone" in lost and "acks the original anyway" in lost


def test_broker_full_sentences_say_what_the_api_answered_and_where_the_jobs_are():
    """The outcome read off a broker-full record decides the words: a hang, a 503 or neither; a stuck worker."""
    outage = {"answers": {"200": 90, "503": 7, "other": 0, "hang": 0}, "max_latency_ms": 12.0}
    refused = _result(outage=outage)
    assert refused.refused_while_out == 7 and refused.hung_while_out == 0
    celery = load_runner("celery").faults
    redis_full = {"broker_name": "redis", "acks_late": True}
    told = celery.mechanism("broker-full", redis_full, refused)
    assert "refused 7 requests with 503" in told and "every accepted job ran" in told
    assert "celery/celery#5716" not in told
    stuck = celery.mechanism("broker-full", redis_full, _result(outage=outage, held=40))
    assert "celery/celery#5716" in stuck and "40 jobs it had accepted were still waiting" in stuck

    hung = _result(outage={"answers": {"200": 3, "503": 0, "other": 0, "hang": 5}, "max_latency_ms": 10005.0})
    for runner in ("celery", "dramatiq"):
        told = load_runner(runner).faults.mechanism("broker-full", {"broker_name": "rabbitmq"}, hung)
        assert "memory alarm" in told and "5 of the API's requests hung" in told
    for runner in ("rq", "dramatiq", "taskiq", "arq", "saq"):
        told = load_runner(runner).faults.mechanism("broker-full", {"broker_name": "redis"}, refused)
        assert "full Redis refuses" in told, runner


def test_a_hanging_api_is_an_alert_named_with_its_broker():
    """broker-full on RabbitMQ: requests left hanging break the quick-503 promise, and the cell is named with
    its broker (Celery on RabbitMQ is not Celery on Redis)."""
    results = example_results(faults=False)
    hung = {
        "requests": 150,
        "answers": {"200": 95, "503": 0, "other": 0, "hang": 55},
        "max_latency_ms": 10100.0,
    }
    refused = {
        "requests": 150,
        "answers": {"200": 140, "503": 10, "other": 0, "hang": 0},
        "max_latency_ms": 30.0,
    }
    results["faults"] = [
        _fault("celery", "safe", 1, fault="broker-full", broker="rabbitmq", outage=hung),
        _fault("celery", "safe", 1, fault="broker-full", broker="redis", outage=refused),
    ]
    found = _faults(summarize(results))
    alerts = [f.text for f in found if f.kind == "alert"]
    assert alerts == [
        "Celery on RabbitMQ (safe), broker-full: the API left 55 of 150 requests unanswered within the probe's "
        "timeout while the broker was full, over 1 trial: a client waits instead of getting a 503 it can retry."
    ]
    results_lines = [f.text for f in found if f.kind == "result"]
    assert [t.split(":")[0] for t in results_lines] == [
        "When things break, Celery on RabbitMQ",
        "When things break, Celery",
    ]


def test_api_deploy_runs_once_per_broker_runner_and_for_every_in_api_runner():
    """A broker runner's API holds no job in either config: its safe cell answers for both; BackgroundTasks'
    single config always runs, since there the API is where the tasks live."""
    cells = matrix(("inprocess", "celery"), faults=("api-deploy",), trials=1, brokers=("redis",))
    # Each once under half-capacity load, once with a backlog and a grace period shorter than it.
    assert sorted((c.config, c.variant) for c in cells if c.runner == "celery") == [
        ("safe", ""),
        ("safe", "short-grace"),
    ]
    assert sorted(c.variant for c in cells if c.runner == "inprocess") == ["", "short-grace"]
    assert identity(cells[-1], 1).get("variant") == cells[-1].variant


def test_api_deploy_sentences_count_the_requests_turned_away_at_the_door():
    answers = {
        "requests": 120,
        "answers": {"200": 100, "503": 0, "other": 20, "hang": 0},
        "max_latency_ms": 5.0,
    }
    for runner in ("rq", "celery", "dramatiq", "taskiq", "arq", "saq"):
        told = load_runner(runner).faults.mechanism(
            "api-deploy", {"broker_name": "redis"}, _result(outage=answers)
        )
        assert "lost none" in told and "20 requests found no API listening" in told, runner
    lost = load_runner("celery").faults.mechanism(
        "api-deploy", {"broker_name": "rabbitmq"}, _result(outage=answers, lost=2)
    )
    assert lost.startswith("2 jobs the API had accepted never ran") and "RabbitMQ" in lost
    graceful = load_runner("inprocess").faults.mechanism("api-deploy", {}, _result(outage=answers))
    assert "graceful shutdown" in graceful
    assert "died with it" in load_runner("inprocess").faults.mechanism("api-deploy", {}, _result(lost=3))


def test_partition_runs_both_cuts_in_every_config_and_slow_link_says_what_it_leaves_out():
    """The workers' cut and the API's, in each configuration (how long a library waits before it hands a
    silent worker's jobs on is its configuration's own), on both brokers; slow-link's relay is Redis's only,
    and the run says so."""
    cells = matrix(("inprocess", "celery", "dramatiq"), faults=("partition",), trials=1)
    assert not [c for c in cells if c.runner == "inprocess"]
    assert {c.broker_name for c in cells} == {"redis", "rabbitmq"}
    assert sorted(
        (c.config, c.variant) for c in cells if c.runner == "celery" and c.broker_name == "redis"
    ) == [
        ("defaults", "api"),
        ("defaults", "workers"),
        ("safe", "api"),
        ("safe", "workers"),
    ]
    assert identity(cells[0], 1)["variant"] in ("workers", "api")
    assert skipped_faults(("celery", "dramatiq", "rq"), ("partition",)) == []
    assert skipped_faults(("celery", "dramatiq", "rq"), ("slow-link",)) == [
        "slow-link not run for celery, dramatiq on RabbitMQ: its loss and jitter are emulated in a relay in front "
        "of Redis only"
    ]


def test_the_workers_cut_outlasts_the_redelivery_bound_and_the_apis_outlasts_a_hang():
    assert cut_length_s("workers", 85.0, FULL) == 95.0
    assert cut_length_s("workers", 5.0, FULL) == FULL.partition_s  # never shorter than a cut worth the name
    assert cut_length_s("workers", None, FULL) == FULL.partition_s  # no bound: nothing to outlast
    assert cut_length_s("workers", 3700.0, FULL) == FULL.partition_s  # past patience: the record says so
    assert cut_length_s("api", 85.0, FULL) == FULL.full_s > HANG_S
    # A killed consumer's connection closes at once; a cut one's only once the node misses its heartbeats.
    assert silence_bound_s("rabbitmq", 2.0) == 90.0 and silence_bound_s("redis", 2.0) == 2.0


def test_partition_sentences_say_which_host_was_cut_and_whether_the_bound_passed():
    described = {
        "rq": {
            "broker_name": "redis",
            "retry": "Retry(max=2)",
            "job_monitoring_interval_s": 15,
            "maintenance_interval_s": 5,
            "idle_dequeue_block_s": 5,
            "job_timeout_s": 180,
        },
        "celery": {
            "broker_name": "redis",
            "acks_late": True,
            "visibility_timeout_s": 30,
            "unacked_sweep_s": 5,
        },
        "dramatiq": {
            "broker_name": "redis",
            "reliability": {"heartbeat_timeout_ms": 60_000, "maintenance_chance_per_million": 100_000},
        },
        "taskiq": {"broker_name": "redis", "idle_timeout_ms": 60_000, "reclaim_interval_s": 5},
        "arq": {"broker_name": "redis", "in_progress_timeout_s": 190, "poll_delay_s": 0.5},
        "saq": {
            "broker_name": "redis",
            "retries": 3,
            "heartbeat_s": 30,
            "sweep_interval_s": 5,
            "schedule_interval_s": 1,
            "slots": 8,
        },
    }
    long_cut = _result(cut_off="workers", cut_s=200.0, reexecuted=5)
    for runner, d in described.items():
        told = load_runner(runner).faults.mechanism("partition", d, long_cut)
        assert "the workers were cut off from Redis for 200 s" in told, runner
        assert "5 jobs run again" in told, runner
        assert "the cut outlasted" in told, runner
    short = load_runner("arq").faults.mechanism(
        "partition", described["arq"], _result(cut_off="workers", cut_s=30.0)
    )
    assert "the cut ended before" in short and "every accepted job ran" in short
    answers = {
        "requests": 150,
        "answers": {"200": 20, "503": 130, "other": 0, "hang": 0},
        "max_latency_ms": 2100.0,
    }
    api = load_runner("rq").faults.mechanism(
        "partition", described["rq"], _result(cut_off="api", cut_s=15.0, outage=answers)
    )
    assert "answered 503 to 130 requests while cut off from Redis for 15 s, none hanging" in api
    for runner in ("celery", "dramatiq"):
        told = load_runner(runner).faults.mechanism(
            "partition", {"broker_name": "rabbitmq"}, _result(cut_off="workers", cut_s=100.0)
        )
        assert "the cut outlasted RabbitMQ's 60 s heartbeat timeout" in told, runner
        assert "the workers were cut off from RabbitMQ for 100 s" in told, runner
    hung = {**answers, "answers": {"200": 20, "503": 0, "other": 0, "hang": 130}}
    told = load_runner("saq").faults.mechanism(
        "partition", described["saq"], _result(cut_off="api", cut_s=15.0, outage=hung)
    )
    assert "130 requests to the API hung" in told


def test_slow_link_runs_beside_partition_and_its_relay_stalls_only_while_impaired():
    cells = matrix(("inprocess", "rq"), faults=("slow-link",), trials=1)
    assert sorted((c.runner, c.config, c.broker_name) for c in cells) == [("rq", "safe", "redis")]
    impairment = Impairment(loss_pct=5.0, jitter_ms=20.0, stall_ms=200.0)
    impairment.rng.seed(7)
    assert {impairment.extra_s() for _ in range(100)} == {0.0}  # off until SIGUSR1
    impairment.on = True
    holds = [impairment.extra_s() for _ in range(20_000)]
    stalled = sum(1 for hold in holds if hold >= 0.2)
    assert 0.04 < stalled / len(holds) < 0.06  # 5% of chunks, each one retransmission timeout late
    assert max(holds) <= 0.2 + 0.02 and min(holds) >= 0.0


def test_slow_link_sentences_give_both_rates_and_the_method():
    record = {
        "throughput": {"clean_per_s": 78.0, "slow_per_s": 39.0, "ratio": 0.5, "n": 400},
        "impairment": {"method": "relay", "loss_pct": 5.0, "stall_ms": 200.0, "jitter_ms": 20.0},
        "reexecuted": 2,
    }
    for runner in ("rq", "celery", "dramatiq", "taskiq", "arq", "saq"):
        told = load_runner(runner).faults.mechanism("slow-link", {"broker_name": "redis"}, _result(**record))
        assert "drained at 39.0/s against 78.0/s on the clean link (x0.50)" in told, runner
        assert "5% of chunks held 200 ms, jitter up to 20 ms (emulated in a relay)" in told, runner
        assert "2 jobs run again" in told, runner


def test_a_faults_only_report_answers_the_rows_it_measured_and_gives_the_slow_link_ratios(tmp_path: Path):
    """`make faults` measures no scenario: its report has no empty scenario, cost or resource sections, and its
    answer table holds the rows its faults measure; slow-link's drain ratios are one finding."""
    results = example_results(faults=False)
    results["records"] = []
    results["parameters"]["scenarios"] = []
    slow = {
        "fault": "slow-link",
        "expected": 400,
        "throughput": {"clean_per_s": 60.0, "slow_per_s": 30.0, "ratio": 0.5, "n": 200},
        "impairment": {"method": "relay", "loss_pct": 5.0, "stall_ms": 200.0, "jitter_ms": 20.0},
    }
    results["faults"] = [
        _fault("rq", "safe", 1, **slow),
        _fault("rq", "safe", 2, **{**slow, "throughput": {**slow["throughput"], "ratio": 0.4}}),
        _fault("celery", "safe", 1, fault="partition", variant="workers", cut_off="workers", cut_s=41.0),
    ]
    found = [f.text for f in _faults(summarize(results))]
    assert any(
        "work drained at RQ ×0.40–×0.50 of the clean link's rate (200 emails per drain, 2 trials" in t
        for t in found
    )
    md = next(p for p in write_reports(results, tmp_path) if p.suffix == ".md").read_text()
    assert "## Results by scenario" not in md and "## Cost per task" not in md
    answer = md.split("## The answer, by kind of work")[1].split("## Key findings")[0]
    assert "a deploy or a network cut" in answer and "I/O-bound" not in answer
    assert "make compare answers the rest" in answer


def test_a_cut_from_the_rabbitmq_node_names_what_confirms_and_a_stuck_consumer_do():
    answers = {
        "requests": 140,
        "answers": {"200": 40, "503": 100, "other": 0, "hang": 0},
        "max_latency_ms": 3500.0,
    }
    celery = load_runner("celery").faults
    unconfirmed = {"broker_name": "rabbitmq", "confirm_publish": False}
    lost = celery.mechanism(
        "partition", unconfirmed, _result(cut_off="api", cut_s=15.0, outage=answers, lost=29)
    )
    assert lost.startswith(
        "without publisher confirms apply_async returns once the message is in the socket's"
    )
    assert "29 jobs the API had accepted never ran" in lost
    stuck = celery.mechanism(
        "partition",
        {"broker_name": "rabbitmq", "confirm_publish": True},
        _result(cut_off="workers", cut_s=100.0, held=32),
    )
    assert "celery/celery#4758" in stuck and "32 jobs the API had accepted were still waiting" in stuck
    hung = {**answers, "answers": {"200": 80, "503": 3, "other": 0, "hang": 46}}
    told = load_runner("dramatiq").faults.mechanism(
        "partition",
        {"broker_name": "rabbitmq", "reliability": {"confirm_delivery": True}},
        _result(cut_off="api", cut_s=15.0, outage=hung),
    )
    assert told.startswith(
        "pika's BlockingConnection waits for the publisher confirm with no timeout, so 46 requests"
    )


def test_a_defaults_loss_its_safe_config_avoided_is_an_alert_and_a_lone_broker_is_named():
    """Celery on RabbitMQ out of the box lost what the API had accepted during a cut; with publisher confirms
    nothing. The two configurations exist to show that difference, and a run on RabbitMQ alone still says
    RabbitMQ: a bare "Celery" reads as Celery on Redis."""
    results = example_results(faults=False)
    lost = {
        "fault": "partition",
        "variant": "api",
        "broker": "rabbitmq",
        "mechanism": "without publisher confirms",
    }
    results["faults"] = [
        _fault("celery", "defaults", 1, **lost, lost=29, expected=109),
        _fault("celery", "defaults", 2, **lost, lost=75, expected=146),
        _fault("celery", "safe", 1, **{**lost, "mechanism": "confirmed"}, expected=90),
    ]
    warnings = [f.text for f in _faults(summarize(results)) if f.kind == "alert"]
    assert any(
        "out of the box it lost 29–75 of 109–146 accepted over 2 trials; its safe configuration lost none of 90."
        in t
        for t in warnings
    ), warnings
    runners = {"celery/rabbitmq": {"display_name": "Celery"}}
    name_brokers(runners, [("celery", "rabbitmq", "celery/rabbitmq")])
    assert runners["celery/rabbitmq"]["display_name"] == "Celery on RabbitMQ"
    alone = {"celery": {"display_name": "Celery"}}
    name_brokers(alone, [("celery", "redis", "celery")])
    assert alone["celery"]["display_name"] == "Celery"
