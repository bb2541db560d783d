"""What the in-process runner knows about its own behaviour under faults (``fbt_tasks.runner.FaultModel``).

There is no broker: a task lives only in the API process's memory, so there is nothing to look up, nothing
to redeliver, and every fault's outcome follows from that.
"""

from collections.abc import Mapping
from typing import Any

from fbt_tasks.runner import NO_HOLDINGS, FaultName, FaultOutcome, Holdings
from fbt_tasks.settings import Settings


class InProcessFaults:
    exhausted_to = "nowhere: only logged, its state in the API's memory"

    def message_locations(self, settings: Settings) -> list[str]:  # noqa: ARG002 (FaultModel's signature)
        return []  # nothing outside the API process's memory

    def holdings(self, settings: Settings, ids: set[str]) -> Holdings:  # noqa: ARG002 (FaultModel's signature)
        return NO_HOLDINGS

    def visibility_timeout_s(self, described: Mapping[str, Any]) -> float | None:  # noqa: ARG002 (FaultModel's signature)
        return None  # nothing is delivered twice: there is no broker

    def inject_malformed(self, settings: Settings) -> str:
        raise NotImplementedError("BackgroundTasks have no queue to put a malformed message on")

    def malformed_whereabouts(self, settings: Settings, marker: str) -> str:  # noqa: ARG002 (FaultModel's signature)
        return "nowhere: there is no queue"

    def redelivery_bound_s(self, described: Mapping[str, Any]) -> float | None:  # noqa: ARG002 (FaultModel's signature)
        return 0.0  # nothing to redeliver

    def mechanism(self, fault: FaultName, described: Mapping[str, Any], result: FaultOutcome) -> str:  # noqa: ARG002 (FaultModel's signature)
        r = result
        if fault == "kill-worker":
            if r.lost == 0:
                return (
                    "every accepted task had finished before the API process was killed, so nothing was left "
                    "in its memory to lose; a task queued or running at that moment would have died with it"
                )
            return (
                "BackgroundTasks live only in the API process's memory, so every task queued or running in it "
                "died with it: nothing persists them and nothing retries them"
            )
        if fault in ("deploy", "api-deploy"):
            if r.lost == 0:
                return (
                    "uvicorn's graceful shutdown waits for in-flight requests, and a request's "
                    "BackgroundTasks run inside it, so the tasks already accepted finished before the process "
                    "exited"
                )
            return "tasks still queued in the API process when its shutdown grace period ran out died with it"
        if fault == "broker-restart":
            if r.failed_attempts:
                return (
                    "enqueueing needs no broker, but send_email's send-once guard needs Redis and "
                    f"BackgroundTasks do not retry: {r.failed_attempts} emails that ran while Redis was "
                    "down failed and were lost"
                )
            return (
                "enqueueing needs no broker and no email failed: tasks that had sent theirs waited for Redis "
                "to record it, holding the threadpool tokens the API's own requests need (slowest answer "
                f"{(r.slowest_answer_ms or 0.0):.0f} ms)"
            )
        return (
            "BackgroundTasks have no retry: a failing task is logged and dropped, its failure visible only in "
            "the API process's memory"
        )


FAULTS = InProcessFaults()
