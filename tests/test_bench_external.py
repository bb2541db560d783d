"""External mode: the harness measures a deployment it did not start, and starts nothing of its own."""

import subprocess
from pathlib import Path

import pytest
from test_bench_e2e import TINY as TINY_LOCAL

from fbt_bench.harness import Plan, run
from fbt_devstack.processes import ProcessGroup, descendants_of_self
from fbt_devstack.stack import Stack
from fbt_tasks.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.bench, pytest.mark.timeout(300)]

# The same shrunken profile as the local end-to-end run, so the two differ only in topology.
TINY = TINY_LOCAL.with_overrides(name="tiny-external", drain_n=20, email_n=4)


class NoSpawning(AssertionError):
    pass


def test_external_mode_spawns_nothing_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(_env_file=None, backend="dramatiq", api_key="ext-key", port=0, worker_processes=1)
    with Stack(settings, workdir=tmp_path / "deployment") as deployment:
        ours = {proc.pid for proc in descendants_of_self()}
        env = {
            "API_URL_DRAMATIQ": deployment.api_url,
            "REDIS_URL": deployment.redis_url,
            "LEDGER_FILE": str(deployment.ledger_path),
            "API_KEY": deployment.api_key,
        }

        started: list[str] = []
        real_popen = subprocess.Popen

        def recording_popen(argv: object, *args: object, **kwargs: object) -> subprocess.Popen:
            started.append(" ".join(map(str, argv[:3])) if isinstance(argv, list | tuple) else str(argv))
            return real_popen(argv, *args, **kwargs)

        def refuse(*args: object, **kwargs: object) -> None:
            raise NoSpawning(f"external mode tried to supervise a process: {args!r}")

        with monkeypatch.context() as patched:
            patched.setattr(subprocess, "Popen", recording_popen)
            patched.setattr(ProcessGroup, "spawn", refuse)
            plan = Plan(
                profile=TINY,
                runners=("inprocess", "celery", "rq", "dramatiq"),
                baselines=(),
                out_root=tmp_path / "results",
                fault_pass=False,
            )
            outcome = run(plan, env=env)
        assert {proc.pid for proc in descendants_of_self()} <= ours
    # Python's platform module asks `uname -p` for the CPU and `file -b` for the interpreter's architecture
    # (whichever library first calls platform.architecture()); apart from those, the harness may start only its
    # own load generator and the no-HTTP enqueue probe (the measuring side), never a part of the stack.
    ours_to_run = ("fbt_bench.measuring.openloop", "fbt_bench.scenarios.enqueue_probe")
    platform_probes = ("uname", "file -b")
    assert all(cmd.startswith(platform_probes) or cmd.endswith(ours_to_run) for cmd in started), started

    document = outcome.document
    assert outcome.failures == []
    assert document["topology"] == "external"
    # Only the runner whose API URL was given is measured, through the deployment's own ledger.
    assert {record["runner"] for record in document["records"]} == {"dramatiq"}
    for record in document["records"]:
        assert record["completed"] == record["expected"] and record["duplicated"] == 0
        # Someone else's processes are not sampled: no cost rather than a false zero.
        assert record["cpu_us_per_task"]["total"] is None
    # Its workers cannot be stopped from here, so drain is skipped, and said so.
    assert "drain" not in {record["scenario"] for record in document["records"]}
    assert any("drain not measured" in warning for warning in document["warnings"])
