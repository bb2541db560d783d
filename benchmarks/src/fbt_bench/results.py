"""The results document (schema_version 1, see the contract in fbt_bench.schema) and where it is written.

Each run goes to ``<out>/<UTC timestamp>/results.json`` and ``<out>/latest`` points at the newest run.
A record whose ledger count is off (missing, duplicated or failed jobs) carries warnings and makes the
whole document ``complete: false``: throughput measured on partial completion is never reported quietly.
"""

import json
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fbt_bench import stats
from fbt_bench.ledger_reader import LedgerTally
from fbt_bench.sampler import GroupUsage

SCHEMA_VERSION = 1
RESOURCE_GROUPS = ("api", "workers", "broker", "smtp", "loadgen")


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def new_document(
    *,
    profile: str,
    topology: str,
    environment: dict[str, Any],
    parameters: dict[str, Any],
    runners: dict[str, dict[str, Any]],
    created_at: datetime | None = None,
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "created_at": iso(created_at or utc_now()),
        "profile": profile,
        "topology": topology,
        "complete": True,
        "environment": environment,
        "parameters": parameters,
        "runners": runners,
        "records": [],
        "faults": [],  # filled by the fault scenarios (fbt_bench.faults) when they run
        "warnings": [],
    }


def completion_warnings(tally: LedgerTally) -> list[str]:
    """Loud, specific statements of anything but exactly-once completion of every expected job."""
    found: list[str] = []
    if tally.completed != tally.expected:
        found.append(
            f"partial completion: {tally.completed} of {tally.expected} jobs completed, "
            f"{tally.missing} missing (throughput and latency below cover only the completed jobs)"
        )
    if tally.duplicated:
        found.append(f"{tally.duplicated} jobs completed more than once (duplicate effects)")
    if tally.failed:
        found.append(f"{tally.failed} jobs failed without a successful attempt")
    return found


def make_record(
    *,
    runner: str,
    scenario: str,
    repeat: int,
    config: str,
    tally: LedgerTally,
    duration_s: float,
    resources: dict[str, GroupUsage],
    enqueue_latency_ms: stats.LatencySummary | None = None,
    extra: dict[str, Any] | None = None,
    warnings: Iterable[str] = (),
) -> dict[str, Any]:
    """One runner x scenario x repeat; ``duration_s`` is the window the throughput is computed over."""
    return {
        "runner": runner,
        "scenario": scenario,
        "repeat": repeat,
        "config": config,
        "expected": tally.expected,
        "completed": tally.completed,
        "duplicated": tally.duplicated,
        "failed": tally.failed,
        "missing": tally.missing,
        "duration_s": round(duration_s, 3),
        "throughput_per_s": round(tally.completed / duration_s, 2) if duration_s > 0 else 0.0,
        "latency_ms": stats.summarize(tally.latency),
        "enqueue_latency_ms": enqueue_latency_ms,
        "cdf_ms": stats.cdf(tally.latency),
        "resources": {
            name: resources.get(name, {"cpu_s": 0.0, "peak_rss_mb": 0.0}) for name in RESOURCE_GROUPS
        },
        "extra": extra or {},
        "warnings": [*completion_warnings(tally), *warnings],
    }


def record_is_complete(record: dict[str, Any]) -> bool:
    return record["completed"] == record["expected"] and record["duplicated"] == 0 and record["failed"] == 0


def flag_noisy_repeats(records: list[dict[str, Any]]) -> list[str]:
    """Warn, on the records and for the run, where a metric varies by more than 15% across repeats."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[(record["runner"], record["scenario"], record["config"])].append(record)
    found: list[str] = []
    for (runner, scenario, _), members in sorted(groups.items()):
        if len(members) < 2:
            continue
        for metric, values in (
            ("throughput_per_s", [r["throughput_per_s"] for r in members]),
            ("e2e p50", [r["latency_ms"]["p50"] for r in members]),
        ):
            if not any(values):
                continue
            spread = stats.spread(values)
            if spread["noisy"]:
                message = (
                    f"{runner}/{scenario}: {metric} varies across {len(values)} repeats "
                    f"(CV {spread['cv']:.1%} > 15%, {spread['min']:g}..{spread['max']:g}); treat as noisy"
                )
                found.append(message)
                for record in members:
                    record["warnings"].append(message)
    return found


def finalize(document: dict[str, Any], *, partial_reason: str | None = None) -> dict[str, Any]:
    """Set ``complete`` and the run-level warnings once every record is in."""
    warnings: list[str] = document["warnings"]
    warnings.extend(flag_noisy_repeats(document["records"]))
    incomplete = [r for r in document["records"] if not record_is_complete(r)]
    for record in incomplete:
        warnings.append(
            f"{record['runner']}/{record['scenario']} repeat {record['repeat']}: "
            f"{record['completed']}/{record['expected']} completed, {record['duplicated']} duplicated, "
            f"{record['failed']} failed"
        )
    if partial_reason:
        warnings.insert(0, f"PARTIAL RUN: {partial_reason}; only what was measured before it is included")
    document["complete"] = not incomplete and partial_reason is None
    return document


def run_directory(out_root: Path, created_at: str) -> Path:
    stamp = created_at.replace("-", "").replace(":", "")
    return Path(out_root) / stamp


def write_results(document: dict[str, Any], out_root: Path) -> Path:
    """Write ``<out_root>/<timestamp>/results.json``, point ``<out_root>/latest`` at it; return the file."""
    directory = run_directory(out_root, document["created_at"])
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "results.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(to_json(document), encoding="utf-8")
    os.replace(tmp, path)
    point_latest(directory)
    return path


NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
PAIR = re.compile(rf"\[\s*({NUMBER}),\s*({NUMBER})\s*\]")


def to_json(document: dict[str, Any]) -> str:
    """Indented for reading, but each [x, y] point on one line: CDFs and time series stay compact."""
    return PAIR.sub(r"[\1, \2]", json.dumps(document, indent=2)) + "\n"


def point_latest(directory: Path) -> None:
    """Atomically repoint the ``latest`` symlink (relative, so the results folder can be moved)."""
    link = directory.parent / "latest"
    tmp = directory.parent / ".latest.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(directory.name, target_is_directory=True)
    os.replace(tmp, link)
