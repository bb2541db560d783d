"""The results document (schema_version 2, see the contract in fbt_bench.schema) and where it is written.

A record (one runner x scenario x repeat) is built by ``fbt_bench.scenarios.record``; here the document
around the records: ``new_document``, ``finalize`` once every record is in, and the faults-only document
``fbt-bench faults`` writes.

Each run goes to ``<out>/<UTC timestamp>/results.json`` and ``<out>/latest`` points at the newest run.
A record whose ledger count is off (missing, duplicated or failed jobs) carries warnings and makes the
whole document ``complete: false``: throughput measured on partial completion is never reported quietly.
"""

import json
import os
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fbt_bench.faults.model import FaultParams
from fbt_bench.faults.run import not_measured, parameters
from fbt_bench.measuring import stats
from fbt_bench.measuring.environment import describe_environment
from fbt_bench.profiles import PROFILES
from fbt_bench.scenarios.record import kept_up
from fbt_tasks.registry import configure, load_runner, system_key
from fbt_tasks.runner import BROKER_TITLES, runner_record
from fbt_tasks.settings import Settings

SCHEMA_VERSION = 2


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


def record_is_complete(record: dict[str, Any]) -> bool:
    return bool(
        record["completed"] == record["expected"] and record["duplicated"] == 0 and record["failed"] == 0
    )


Condition = tuple[tuple[str, float | str], ...]


def conditions(record: dict[str, Any]) -> Condition:
    """What a record was measured under besides its system and scenario: records that differ here are
    different conditions, never repeats of each other (a steady fraction, an RTT, a slot count, a sweep's
    placement)."""
    extra = record.get("extra", {})
    numbers = (
        ("fraction", extra.get("fraction") if record["scenario"] == "steady" else None),
        ("rtt_ms", record.get("rtt_ms")),
        ("slots", record.get("slots")),
    )
    found: list[tuple[str, float | str]] = [
        (name, float(value)) for name, value in numbers if isinstance(value, int | float)
    ]
    if record["scenario"] == "cpu-sweep" and isinstance(extra.get("placement"), str):
        found.append(("placement", extra["placement"]))
    return tuple(found)


def _condition_text(condition: Condition) -> str:
    words = {
        "fraction": lambda v: f"at {v:.0%}",
        "rtt_ms": lambda v: f"at {v:g} ms RTT",
        "slots": lambda v: f"{v:g} slots",
        "placement": lambda v: f"({v})",
    }
    return "".join(f" {words[name](value)}" for name, value in condition)


def flag_noisy_repeats(records: list[dict[str, Any]]) -> list[str]:
    """Warn, on the records and for the run, where a metric varies by more than 15% across repeats."""
    groups: dict[tuple[str, str, str, Condition], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        key = system_key(record["runner"], record.get("broker"))
        groups[(key, record["scenario"], record["config"], conditions(record))].append(record)
    found: list[str] = []
    for (system, scenario, _, condition), members in sorted(groups.items()):
        where = f"{system}/{scenario}{_condition_text(condition)}"
        if len(members) < 2:
            continue
        ratios = [v for v in (kept_up(r) for r in members) if v is not None]
        # An offered rate that differs by repeat (steady) moves the throughput with it: compare what was kept up.
        rate: tuple[str, list[float]] = (
            ("completed ÷ offered", ratios)
            if len(ratios) == len(members)
            else ("throughput_per_s", [r["throughput_per_s"] for r in members])
        )
        for metric, values in (rate, ("e2e p50", [r["latency_ms"]["p50"] for r in members])):
            if not any(values):
                continue
            spread = stats.spread(values)
            if spread["noisy"]:
                message = (
                    f"{where}: {metric} varies across {len(values)} repeats "
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
            f"{system_key(record['runner'], record.get('broker'))}/{record['scenario']} repeat {record['repeat']}: "
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


def name_brokers(runners: dict[str, dict[str, Any]], systems: list[tuple[str, str, str]]) -> None:
    """A runner measured on more than one broker, or on a broker other than its default: each of its entries
    (``systems``: runner, broker, key) says which ("Celery on RabbitMQ"); a reader takes a bare "Celery" for
    Celery on its default broker."""
    counts = Counter(runner for runner, _, _ in systems)
    for runner, broker, key in systems:
        facts = runners.get(key)
        named = counts[runner] > 1 or broker != load_runner(runner).brokers[0]
        if named and facts is not None and "display_name" in facts:
            facts["display_name"] = f"{facts['display_name']} on {BROKER_TITLES[broker]}"


def standalone_document(
    records: list[dict[str, Any]], params: FaultParams, command: str | None = None
) -> dict[str, Any]:
    """A results document holding only fault records (``fbt-bench faults``): no scenario records."""
    runners: dict[str, dict[str, Any]] = {}
    systems: list[tuple[str, str, str]] = []
    for record in sorted(records, key=lambda r: r["config"] != "safe"):  # the safe configuration first
        key = system_key(record["runner"], record.get("broker"))
        if key not in runners and not record.get("error"):
            runners[key] = _fault_runner(record, params)
            broker = record.get("broker") or load_runner(record["runner"]).brokers[0]  # older: the default
            systems.append((record["runner"], broker, key))
    name_brokers(runners, systems)
    document = new_document(
        profile="faults",
        topology="local",
        environment=describe_environment(None),
        parameters={
            # The schema's benchmark parameters: no scenario ran, so their sizes are zero.
            "slots": params.slots,
            "worker_processes": params.worker_processes,
            "worker_threads": params.worker_threads,
            "repeats": 1,
            "slo_ms": PROFILES["default"].slo_ms,
            "drain_n": 0,
            "email_n": params.n,
            "smtp_delay_ms": params.smtp_delay_ms,
            "cpu_n": 0,
            "probe_rate_hz": 0,
            "mixed_rate": 0,
            "mixed_duration_s": 0,
            "runner_order": [],
            "runners": list(dict.fromkeys(system_key(r["runner"], r.get("broker")) for r in records)),
            "scenarios": [],
            "faults": parameters(params),
        },
        runners=runners,
    )
    if command:
        document["command"] = command
    document["faults"] = records
    missing = not_measured(records)
    document["warnings"].extend(missing)
    return finalize(document, partial_reason=f"{len(missing)} fault cells not measured" if missing else None)


def _fault_runner(record: dict[str, Any], params: FaultParams) -> dict[str, Any]:
    """The plugin's facts for the cell's settings, then the configuration in force it recorded."""
    settings = configure(
        Settings(
            backend=record["runner"],
            broker=record.get("broker"),
            queue_config=record["config"],
            worker_processes=params.worker_processes,
            worker_threads=params.worker_threads,
        )
    )
    return {**runner_record(load_runner(record["runner"]), settings), **record.get("configuration", {})}
