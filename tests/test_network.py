"""The hosts topology (fbt_devstack.netns): network namespaces, a bridge, a delay on the broker's link.

Needs root and iproute2; elsewhere every test here skips with the reason. Asserts only lower bounds that
physics guarantees (a round trip through a 1 ms delay takes at least 1 ms) and that nothing is left
behind, never a speed.
"""

import os
import sys
from pathlib import Path

import pytest
from test_bench_e2e import TINY
from typer.testing import CliRunner

from fbt_bench.cli import app
from fbt_bench.harness import Plan, publish, run
from fbt_devstack import netns
from fbt_devstack.ports import free_port, wait_for_port
from fbt_devstack.processes import ProcessGroup, descendants_of_self
from fbt_devstack.redis_server import RedisServer

REASON = netns.unavailable_reason()
needs_root = pytest.mark.skipif(REASON is not None, reason=REASON or "")

RTT_MS = 1.0


def _mine(hosts: netns.Hosts) -> tuple[list[str], list[str]]:
    tagged = f"{hosts.prefix}{hosts.tag}"
    return (
        [name for name in netns.our_namespaces() if name.startswith(tagged)],
        [name for name in netns.our_links() if name.startswith(tagged)],
    )


def test_network_profile_without_root_stops_at_once_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    result = CliRunner().invoke(app, ["compare", "--profile", "network"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["--profile network: " + (netns.unavailable_reason() or "")]
    assert "root" in result.output


@pytest.mark.e2e
@needs_root
def test_two_namespaces_gain_the_round_trip_and_leave_nothing(tmp_path: Path) -> None:
    made = netns.Hosts(("client", "broker"), rtt_ms=RTT_MS)
    with made, ProcessGroup() as group:
        assert sorted(_mine(made)[0]) == sorted([made.namespace("client"), made.namespace("broker")])
        broker = made.address("broker")
        with RedisServer(
            workdir=tmp_path / "redis", bind=broker, argv_prefix=made.exec_prefix("broker")
        ) as rs:
            port = rs.port or 0
            if made.delay_method == "proxy":
                port = free_port()
                argv = [*made.exec_prefix("broker"), sys.executable, "-m", "fbt_devstack.delay_proxy"]
                argv += [f"--listen={broker}:{port}", f"--target={broker}:{rs.port}"]
                argv += [f"--delay-ms={made.one_way_delay_ms}"]
                group.spawn("delay", argv, env=dict(os.environ), log_path=tmp_path / "delay.log")
                wait_for_port(broker, port, timeout_s=30)
            rtt = netns.round_trip_ms(made.exec_prefix("client"), broker, port)
    # A lower bound, not a speed: every round trip crosses the delay twice, half the RTT each way.
    assert rtt >= RTT_MS, (rtt, made.delay_method)
    assert _mine(made) == ([], [])


NETWORK_TINY = TINY.with_overrides(
    name="network-tiny", rtts_ms=(RTT_MS,), scenarios=("drain", "steady"), drain_n=30, steady_completions=10
)


@pytest.mark.e2e
@needs_root
def test_one_runner_drains_across_hosts_and_leaves_nothing(tmp_path: Path) -> None:
    before = {proc.pid for proc in descendants_of_self()}
    plan = Plan(
        profile=NETWORK_TINY,
        runners=("rq",),
        scenarios=("drain", "steady"),
        baselines=(),
        out_root=tmp_path,
        command="pytest tests/test_network.py",
        fault_pass=False,
        brokers=("redis",),
    )
    outcome = run(plan)
    _, problems = publish(outcome)
    assert outcome.failures == [] and problems == []
    assert outcome.document["topology"] == "hosts"
    records = outcome.document["records"]
    drains = [r for r in records if r["scenario"] == "drain"]
    assert [r["completed"] for r in drains] == [NETWORK_TINY.drain_n]
    for record in records:
        assert record["rtt_ms"] == RTT_MS
        assert record["network"]["rtt_measured_ms"] >= RTT_MS
        assert record["network"]["redis_commands_per_task"] > 0
    assert [p for p in descendants_of_self() if p.pid not in before] == []
    tagged = f"{netns.PREFIX}{os.getpid()}"
    assert [n for n in netns.our_namespaces() + netns.our_links() if n.startswith(tagged)] == []
