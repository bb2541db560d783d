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
