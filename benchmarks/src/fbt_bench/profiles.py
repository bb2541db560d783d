"""Parameter sets (benchmark "profiles"): ``quick`` (CI smoke test, <= 2 minutes on 2 cores) and
``default`` (<= 12 minutes).

The N's are budgeted so the whole matrix (every runner x 5 scenarios x repeats, plus the floors and a stack
start per runner and repeat) fits those limits on a shared 2-core machine, and were tuned by measuring
there. The slowest runner sets the budget: a worker that forks a process per job drains log jobs far
slower than the others, so the issue's larger N's (``--n 20000``) are one option away when there is time
to spend, not the default.
"""

import dataclasses
from dataclasses import dataclass
from typing import Any

SCENARIOS: tuple[str, ...] = ("enqueue", "log-burst", "email-io", "cpu-heavy", "mixed")


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    repeats: int
    # The equal budget: every runner gets processes x threads worker slots (see docs/CONTRACTS.md).
    worker_processes: int
    worker_threads: int
    slo_ms: float
    enqueue_rates: tuple[int, ...]
    enqueue_duration_s: float
    log_burst_n: int
    email_n: int
    smtp_delay_ms: int
    cpu_n: int
    probe_rate_hz: float
    probe_idle_s: float
    mixed_rate: int
    mixed_duration_s: float
    # Closed-loop senders for bursts: enough to keep every slot busy, few enough not to swamp 2 cores.
    burst_concurrency: int = 16
    # The client's connection pool; in-flight requests beyond max_in_flight are counted as overflow.
    connections: int = 32
    max_in_flight: int = 2000
    # The resize job: a generated noise image of this size scaled down (a fraction of a second of CPU).
    image_width: int = 1280
    image_height: int = 720
    warmup_n: int = 20
    drain_timeout_s: float = 120.0
    stall_timeout_s: float = 30.0
    # The short kill-worker pass (both queue configurations). It waits for the slowest runner's redelivery
    # bound, minutes rather than seconds: too long for ``quick``.
    fault_pass: bool = True

    @property
    def slots(self) -> int:
        return self.worker_processes * self.worker_threads

    def with_overrides(self, **changes: Any) -> "Profile":
        """A copy with some fields replaced; ``None`` values are ignored (CLI options left unset)."""
        given = {key: value for key, value in changes.items() if value is not None}
        return dataclasses.replace(self, **given) if given else self

    def parameters(self) -> dict[str, Any]:
        """The run's parameters for results.json."""
        out = dataclasses.asdict(self)
        out.pop("name")
        out["enqueue_rates"] = list(self.enqueue_rates)
        out["slots"] = self.slots
        return out


QUICK = Profile(
    name="quick",
    repeats=1,
    worker_processes=2,
    worker_threads=4,
    slo_ms=50.0,
    enqueue_rates=(50, 100),
    enqueue_duration_s=1.0,
    log_burst_n=1_000,
    email_n=40,
    smtp_delay_ms=100,
    cpu_n=6,
    probe_rate_hz=20.0,
    probe_idle_s=0.5,
    mixed_rate=50,
    mixed_duration_s=1.5,
    warmup_n=8,
    drain_timeout_s=60.0,
    stall_timeout_s=20.0,
    fault_pass=False,
)

DEFAULT = Profile(
    name="default",
    repeats=3,
    worker_processes=2,
    worker_threads=4,
    slo_ms=50.0,
    enqueue_rates=(25, 50, 100, 200),
    enqueue_duration_s=1.5,
    log_burst_n=2_500,
    email_n=160,
    smtp_delay_ms=100,
    cpu_n=20,
    probe_rate_hz=20.0,
    probe_idle_s=2.0,
    mixed_rate=100,
    mixed_duration_s=5.0,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (QUICK, DEFAULT)}
