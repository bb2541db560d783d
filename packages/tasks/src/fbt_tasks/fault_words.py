"""Phrases the runners' fault models share, so every runner words the same measurement the same way."""

from fbt_tasks.runner import FaultOutcome


def outage(outcome: FaultOutcome, retried_by: str) -> str:
    """What became of the tasks that hit Redis while it was down, as measured."""
    failed, again = outcome.failed_attempts, outcome.reexecuted
    if not failed:
        return "no task attempt failed on it"
    rerun = f"{again} jobs were run again by {retried_by}" if again else "none was run again"
    return f"{failed} task attempts failed on Redis during the outage and {rerun}"


def crash(outcome: FaultOutcome) -> str:
    """What a SIGKILLed Redis, restarted from its AOF, cost: acknowledged jobs gone, under which fsync policy."""
    policy, lost = outcome.appendfsync or "everysec", outcome.lost
    if not lost:
        return f"Redis restarted from its AOF (appendfsync {policy}) with every acknowledged job still in it"
    return (
        f"{lost} jobs the API had acknowledged were gone after Redis restarted from its AOF: with appendfsync "
        f"{policy} the writes of the last moments before the SIGKILL had not reached the disk"
    )


def node_crash(outcome: FaultOutcome, kept: str) -> str:
    """What a SIGKILLed RabbitMQ node, started again on its data dir, cost; ``kept`` says what was meant to
    survive ("confirmed persistent messages on a quorum queue")."""
    lost = outcome.lost
    if not lost:
        return f"RabbitMQ came back from the SIGKILL with every acknowledged job still there ({kept})"
    return (
        f"{lost} jobs the API had acknowledged were gone after the SIGKILLed RabbitMQ node restarted: only "
        f"{kept} survive a crash"
    )


def executions(outcome: FaultOutcome) -> str:
    """How often each delayed job ran, as measured."""
    if outcome.runs is None:
        return "no delayed job ran within the watch"
    low, high, skipped = outcome.runs
    return f"each delayed job ran {low}-{high} times ({skipped} runs turned away as repeats)"


def malformed(outcome: FaultOutcome) -> str:
    """Where the malformed message ended up and whether the workers went on."""
    went_on = "the worker kept working" if outcome.worker_kept_working else "the worker stopped working"
    return f"the malformed message ended up {outcome.poison_where or 'nowhere known'} and {went_on}"
