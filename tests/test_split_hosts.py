"""The multi-host path of docs/deploy.md on one machine: Redis, ``fbt-worker`` and ``fbt-api`` each in a network
namespace of its own, configured only through the variables a user sets on each host (fbt_devstack.split), and
the harness in external mode measuring that deployment from the root namespace, across the bridge.

Needs root and iproute2; elsewhere it skips with the reason. Asserts where things ran, that completions were
counted from the ledger, and that nothing is left behind; never a speed.
"""

import os
from pathlib import Path

import pytest
from test_bench_external import TINY

from fbt_bench.harness import Plan, run
from fbt_devstack import netns
from fbt_devstack.processes import descendants_of_self
from fbt_devstack.split import ROLES, split_deployment
from fbt_tasks.ledger import read_events

REASON = netns.unavailable_reason()
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.bench,
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(REASON is not None, reason=REASON or ""),
]

RUNNER = "dramatiq"
# Dramatiq's worker processes live as long as the worker, so the ledger's pids can be looked up while it runs
# (RQ forks a work-horse per job, gone by the time the ledger is read).
SIZING = {"WORKER_PROCESSES": "1", "WORKER_THREADS": "2", "QUEUE_CONFIG": "safe"}
# steady offers fractions of accept's knee (drain is not measured in external mode); email-io's mail leaves the
# workers' host for the sink in the root namespace.
SPLIT_TINY = TINY.with_overrides(name="tiny-split", scenarios=("accept", "steady", "email-io"), email_n=4)
COUNTED = ("steady", "email-io")


def _net_ns(pid: int | str) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


def _ours(tag: str) -> list[str]:
    return [name for name in netns.our_namespaces() + netns.our_links() if name.startswith(tag)]


def test_the_harness_measures_a_deployment_split_across_hosts_and_nothing_is_left(tmp_path: Path) -> None:
    before = {proc.pid for proc in descendants_of_self()}
    with split_deployment(RUNNER, tmp_path / "deployment", extra=SIZING) as deployment:
        made = deployment.hosts
        tag = f"{made.prefix}{made.tag}"
        placed = {role: deployment.pids(role) for role in ROLES}
        # Every process on the host of its role, none in the root namespace (where this test and the sink run).
        for role, pids in placed.items():
            assert pids, role
            assert set(pids) <= made.pids(role), (role, pids)
            assert {_net_ns(pid) for pid in pids} == {_net_ns(pids[0])} != {_net_ns("self")}
        assert len({_net_ns(pids[0]) for pids in placed.values()}) == len(ROLES)
        # The API was told the broker's address, not loopback: its host has no Redis of its own.
        assert made.address("broker") in deployment.redis_url

        plan = Plan(
            profile=SPLIT_TINY,
            runners=(RUNNER,),
            scenarios=SPLIT_TINY.scenarios,
            baselines=(),
            out_root=tmp_path / "results",
            command="pytest tests/test_split_hosts.py",
            fault_pass=False,
        )
        outcome = run(plan, env=deployment.external_env())
        # Every completion in the ledger was an attempt run by a worker process on the workers' host.
        finished = {event.pid for event in read_events(deployment.ledger_path) if event.ok}
        on_workers = made.pids("workers")
        assert finished and finished <= on_workers, (finished, on_workers)

    assert outcome.failures == []
    document = outcome.document
    assert document["topology"] == "external"
    records = document["records"]
    assert {record["runner"] for record in records} == {RUNNER}
    counted = [record for record in records if record["scenario"] in COUNTED]
    assert {record["scenario"] for record in counted} == set(COUNTED), document["warnings"]
    for record in counted:
        # Counted from the deployment's ledger (read on the filesystem the namespaces share).
        assert record["completed"] == record["expected"] > 0 and record["duplicated"] == 0
    assert [proc for proc in descendants_of_self() if proc.pid not in before] == []
    assert _ours(tag) == []
