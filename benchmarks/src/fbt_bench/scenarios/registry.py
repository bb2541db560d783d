"""The scenarios by name, in the order the report shows them (a run shuffles them per repeat).

A scenario returns one record, or a list of them (steady: one per fraction).
"""

from collections.abc import Awaitable, Callable
from typing import Any

from fbt_bench.scenarios.accept import accept
from fbt_bench.scenarios.burst import burst
from fbt_bench.scenarios.bursts import email_io
from fbt_bench.scenarios.context import ScenarioContext
from fbt_bench.scenarios.cpu_heavy import cpu_heavy
from fbt_bench.scenarios.cpu_sweep import cpu_sweep
from fbt_bench.scenarios.drain import drain_scenario
from fbt_bench.scenarios.mixed import mixed
from fbt_bench.scenarios.steady import steady

Records = dict[str, Any] | list[dict[str, Any]]
ScenarioRun = Callable[[ScenarioContext], Awaitable[Records]]

SCENARIO_RUNS: dict[str, ScenarioRun] = {
    "accept": accept,
    "drain": drain_scenario,
    "steady": steady,
    "email-io": email_io,
    "cpu-heavy": cpu_heavy,
    "mixed": mixed,
    "cpu-sweep": cpu_sweep,
    "burst": burst,
}
# steady runs at fractions of the accept knee and the drain rate of the same repeat.
DEPENDS_ON: dict[str, tuple[str, ...]] = {"steady": ("accept", "drain")}
# What the floors run: raw Redis behind the same API, direct call for the worker path only.
FLOOR_SCENARIOS: dict[str, tuple[str, ...]] = {
    "raw-redis": ("accept", "drain", "steady"),
    "direct-call": ("drain",),
}
