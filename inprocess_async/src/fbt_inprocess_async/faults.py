"""What the async in-process runner knows about faults: the sync runner's model (the same BackgroundTasks in
the same process: nothing persisted, nothing redelivered), except where its tasks wait on the loop rather than
on the threadpool."""

from collections.abc import Mapping
from typing import Any

from fbt_inprocess.faults import InProcessFaults
from fbt_tasks.runner import FaultName, FaultOutcome


class InProcessAsyncFaults(InProcessFaults):
    def mechanism(self, fault: FaultName, described: Mapping[str, Any], result: FaultOutcome) -> str:
        if fault == "broker-restart" and not result.failed_attempts:
            return (
                "enqueueing needs no broker and no email failed: tasks that had sent theirs waited on the loop "
                f"for Redis to record it, holding {described.get('concurrent_tasks', 'their')} task slots but no "
                f"thread the API's requests need (slowest answer {(result.slowest_answer_ms or 0.0):.0f} ms)"
            )
        return super().mechanism(fault, described, result)


FAULTS = InProcessAsyncFaults()
