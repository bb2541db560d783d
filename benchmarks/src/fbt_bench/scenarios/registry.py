"""The scenarios by name, in the order a run measures them and the report shows them."""

from fbt_bench.scenarios.bursts import email_io, log_burst
from fbt_bench.scenarios.context import Scenario
from fbt_bench.scenarios.cpu_heavy import cpu_heavy
from fbt_bench.scenarios.enqueue import enqueue
from fbt_bench.scenarios.mixed import mixed

SCENARIO_RUNS: dict[str, Scenario] = {
    "enqueue": enqueue,
    "log-burst": log_burst,
    "email-io": email_io,
    "cpu-heavy": cpu_heavy,
    "mixed": mixed,
}
