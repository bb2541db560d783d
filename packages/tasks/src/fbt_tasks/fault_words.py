"""Phrases the runners' fault models share, so every runner words the same measurement the same way."""

from collections.abc import Mapping
from typing import Any


def outage(result: Mapping[str, Any], retried_by: str) -> str:
    """What became of the tasks that hit Redis while it was down, as measured."""
    failed, again = result["failed_attempts"], result["reexecuted"]
    if not failed:
        return "no task attempt failed on it"
    rerun = f"{again} jobs were run again by {retried_by}" if again else "none was run again"
    return f"{failed} task attempts failed on Redis during the outage and {rerun}"


def crash(result: Mapping[str, Any]) -> str:
    """What a SIGKILLed Redis, restarted from its AOF, cost: acknowledged jobs gone, under which fsync policy."""
    policy, lost = result.get("appendfsync", "everysec"), result["lost"]
    if not lost:
        return f"Redis restarted from its AOF (appendfsync {policy}) with every acknowledged job still in it"
    return (
        f"{lost} jobs the API had acknowledged were gone after Redis restarted from its AOF: with appendfsync "
        f"{policy} the writes of the last moments before the SIGKILL had not reached the disk"
    )


def node_crash(result: Mapping[str, Any], kept: str) -> str:
    """What a SIGKILLed RabbitMQ node, started again on its data dir, cost; ``kept`` says what was meant to
    survive ("confirmed persistent messages on a quorum queue")."""
    lost = result["lost"]
    if not lost:
        return f"RabbitMQ came back from the SIGKILL with every acknowledged job still there ({kept})"
    return (
        f"{lost} jobs the API had acknowledged were gone after the SIGKILLed RabbitMQ node restarted: only "
        f"{kept} survive a crash"
    )


def executions(result: Mapping[str, Any]) -> str:
    """How often each delayed job ran, as measured."""
    runs = result.get("executions", {})
    if not runs:
        return "no delayed job ran within the watch"
    return f"each delayed job ran {runs['min']}-{runs['max']} times ({runs['skipped']} runs turned away as repeats)"


def malformed(result: Mapping[str, Any]) -> str:
    """Where the malformed message ended up and whether the workers went on."""
    poison = result.get("poison", {})
    went_on = "the worker kept working" if poison.get("worker_kept_working") else "the worker stopped working"
    return f"the malformed message ended up {poison.get('where', 'nowhere known')} and {went_on}"
