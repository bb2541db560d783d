"""Fold a ``make faults`` run (three trials per cell, every fault) into a comparison run's results.

A comparison's own fault pass is short (one trial of kill-worker and deploy per cell). ``make report
RESULTS=<run> FAULTS=<faults run>`` puts the fault run's records in its place, so the verdict's crash row and
the burst table rest on every trial; where they came from is recorded under ``parameters.faults_source``.
"""

from pathlib import Path
from typing import Any

from fbt_bench.scenarios.burst import attach_crash_outcomes


def fold_faults(results: dict[str, Any], faults_run: dict[str, Any], source: Path) -> dict[str, Any]:
    """``results`` with ``faults_run``'s fault records (and their parameters) in place of its own."""
    if faults_run.get("profile") != "faults" or not faults_run.get("faults"):
        raise ValueError(f"{source} holds no `make faults` records (profile {faults_run.get('profile')!r})")
    folded = {**results, "faults": list(faults_run["faults"])}
    folded["parameters"] = {
        **results["parameters"],
        "faults": faults_run["parameters"].get("faults"),
        "faults_source": {
            "results": str(source),
            "created_at": faults_run["created_at"],
            "command": faults_run.get("command"),
            "replaced_cells": len(results.get("faults") or []),
        },
    }
    attach_crash_outcomes(folded["records"], folded["faults"])
    return folded
