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


def full(outcome: FaultOutcome, broker: str = "Redis") -> str:
    """What the API answered while the broker was at its memory limit, and what became of the accepted jobs."""
    refused, hung = outcome.refused_while_out or 0, outcome.hung_while_out or 0
    slowest = f"slowest answer {outcome.slowest_answer_ms or 0.0:.0f} ms"
    if hung:
        answered = f"{hung} of the API's requests hung while {broker} was full ({slowest})"
    elif refused:
        answered = (
            f"the API refused {_plural(refused, 'request')} with 503 while {broker} was full ({slowest})"
        )
    else:
        answered = (
            f"the API took every request while {broker} was full, the workers' deletes making room as they went "
            f"({slowest})"
        )
    if outcome.lost:
        return f"{answered}; {_plural(outcome.lost, 'job')} the API had accepted never ran"
    if outcome.held:
        held, verb = _plural(outcome.held, "job"), "was" if outcome.held == 1 else "were"
        return f"{answered}; {held} it had accepted {verb} still waiting when the watch ended"
    return f"{answered}; every accepted job ran once there was room"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def memory_alarm(outcome: FaultOutcome, client_waits: str) -> str:
    """RabbitMQ's memory alarm, as the runner's publishing client met it (``client_waits`` says how)."""
    blocked = (
        f"RabbitMQ's memory alarm blocks every publishing connection until it clears and {client_waits}, so "
        "the API's enqueue waited with it"
        if outcome.hung_while_out
        else "RabbitMQ's memory alarm blocked the publishing connections"
    )
    return f"{blocked}; {full(outcome, 'RabbitMQ')}"


def api_restart(outcome: FaultOutcome, broker: str) -> str:
    """A broker runner's API replaced under load: it holds no job, so what it accepted was already queued."""
    door = outcome.unreachable_while_out or 0
    turned = (
        f"; {_plural(door, 'request')} found no API listening while it was replaced, for the client to retry"
        if door
        else ""
    )
    if outcome.lost:
        return (
            f"{_plural(outcome.lost, 'job')} the API had accepted never ran, although each was in {broker} "
            f"before its 200{turned}"
        )
    return (
        f"the API holds no job: each one it accepted was in {broker} before its 200, so replacing it lost "
        f"none{turned}"
    )


def cut(outcome: FaultOutcome, broker: str = "Redis") -> str:
    """What a partition between one host and the broker's cost, as measured; the runner says why."""
    length = f"{outcome.cut_s or 0.0:.0f} s"
    if outcome.cut_off == "api":
        refused, hung = outcome.refused_while_out or 0, outcome.hung_while_out or 0
        slowest = f"slowest answer {outcome.slowest_answer_ms or 0.0:.0f} ms"
        if hung:
            said = (
                f"{_plural(hung, 'request')} to the API hung while it was cut off from {broker} for {length}"
            )
        else:
            said = (
                f"the API answered 503 to {_plural(refused, 'request')} while cut off from {broker} for "
                f"{length}, none hanging"
            )
        said += f" ({slowest})"
    else:
        said = f"the workers were cut off from {broker} for {length}"
    return f"{said}; {fate(outcome)}"


def fate(outcome: FaultOutcome) -> str:
    """What became of the accepted jobs once the fault was over, as counted."""
    if outcome.lost:
        return f"{_plural(outcome.lost, 'job')} the API had accepted never ran"
    if outcome.held:
        held, verb = _plural(outcome.held, "job"), "was" if outcome.held == 1 else "were"
        return f"{held} the API had accepted {verb} still waiting when the watch ended"
    again = f", {_plural(outcome.reexecuted, 'job')} run again" if outcome.reexecuted else ""
    if outcome.failed:
        return f"{_plural(outcome.failed, 'job')} used up every retry and failed{again}"
    return f"every accepted job ran{again}"


def outlasted(outcome: FaultOutcome, bound_s: float | None, what: str) -> str:
    """Whether a partition lasted past the bound after which the library hands a silent worker's jobs on."""
    if bound_s is None:
        return "nothing in this configuration hands a silent worker's jobs on"
    if (outcome.cut_s or 0.0) > bound_s:
        return f"the cut outlasted {what} (~{bound_s:.0f} s)"
    return f"the cut ended before {what} (~{bound_s:.0f} s)"


def slow(outcome: FaultOutcome, broker: str = "Redis") -> str:
    """How fast work drained over a lossy, jittery broker link against the clean one, and what it cost."""
    clean, slowed = outcome.clean_per_s or 0.0, outcome.slow_per_s or 0.0
    ratio = f" (x{slowed / clean:.2f})" if clean else ""
    return (
        f"over a {broker} link with {outcome.impairment or 'loss and jitter'}, work drained at {slowed:.1f}/s "
        f"against {clean:.1f}/s on the clean link{ratio}; {fate(outcome)}"
    )


# RabbitMQ's default heartbeat timeout (rabbitmq.conf `heartbeat`), which pika and py-amqp accept as offered.
# A peer counts as unreachable after two missed heartbeats, sent every half timeout, so the node closes a
# silent consumer's connection, and requeues its unacked messages, up to half a timeout later than that.
RABBITMQ_HEARTBEAT_S = 60.0
RABBITMQ_SILENCE_BOUND_S = RABBITMQ_HEARTBEAT_S * 1.5


def node_heartbeat(outcome: FaultOutcome) -> str:
    """Whether a workers' partition lasted past the point where the node gives their connections up."""
    what = (
        f"RabbitMQ's {RABBITMQ_HEARTBEAT_S:.0f} s heartbeat timeout, after which the node closes a silent "
        "consumer's connection and requeues its unacked messages"
    )
    return outlasted(outcome, RABBITMQ_SILENCE_BOUND_S, what)
