"""Parameter sets (benchmark "profiles"): ``quick`` (a smoke run: one repeat, small samples), ``default``
(the scenarios the verdict rests on, every runner and floor, 3 repeats, sample sizes the printed
percentiles need, the short fault pass; cpu-sweep and burst once, on each runner's default broker),
``full`` (20,000-job drains, long windows, 5 repeats), and two optional ones that measure one question
each: ``network`` (the broker on another host, needs root) and ``scaling`` (the slot sweep, 1 to 32 slots).

How long a profile takes depends mostly on the slowest worker path, not on the profile: every job the
harness sends must reach the ledger, and an accept step, a drain or a steady window waits for it. A run's
``parameters.time_spent_s`` (the report's "How the run's time was spent") says where its time went, per
phase and per runner; that, not a figure written here, is the time to plan for.

Durations are data-driven where they can be: an accept step lasts max(min_step_s, requests / rate), where
the bracketing steps before the first failure send ``accept_probe_requests`` and the steps near the knee
``accept_knee_requests``; a steady window lasts long enough for ``steady_completions`` completions at its
offered rate, capped by ``steady_max_window_s``.
"""

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

SCENARIOS: tuple[str, ...] = (
    "accept",
    "drain",
    "steady",
    "email-io",
    "cpu-heavy",
    "mixed",
    "cpu-sweep",
    "burst",
)
# What quick runs: cpu-sweep and burst take minutes per runner, too long for a smoke run.
SIX = SCENARIOS[:6]
# What the default profile runs: what the verdict's rows rest on (fbt_bench.report.verdict). steady, mixed and
# cpu-heavy inform the appendices only, so they are full's, which keeps the default within an hour here.
VERDICT = ("accept", "drain", "email-io", "cpu-sweep", "burst")


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    repeats: int
    # The equal budget: every runner gets processes x threads worker slots (see docs/CONTRACTS.md).
    worker_processes: int
    worker_threads: int
    slo_ms: float
    # accept: start low, double until a step fails, bisect to ``accept_resolution``. The ceiling is a safety
    # bound, set high so that it never cuts a runner off; the search stops doubling first when the load
    # generator would be the bottleneck (its CPU over a step above ``accept_loadgen_core_share`` of a core).
    accept_start_rate: float
    accept_ceiling_rate: float
    accept_min_step_s: float
    # A step far below the start rate (the start failed) would need minutes for knee_requests: cap it.
    accept_max_step_s: float
    # When the start rate already fails, halve at most this many times before giving up (no knee below).
    accept_max_halvings: int
    accept_knee_requests: int
    accept_resolution: float
    # The API cost decomposition runs every runner at one common offered rate, so its rows compare; a runner
    # whose knee is too low for it runs at this fraction of its own knee instead (its row says so).
    decomposition_rate: float
    decomposition_fraction: float
    # drain: N write_log jobs pre-filled with the workers stopped.
    drain_n: int
    # steady: open-loop arrivals at these fractions of min(accept knee, drain capacity).
    steady_fractions: tuple[float, ...]
    steady_completions: int
    steady_warmup_s: float
    steady_max_window_s: float
    email_n: int
    smtp_delay_ms: int
    cpu_n: int
    probe_rate_hz: float
    probe_idle_s: float
    mixed_rate: int
    mixed_duration_s: float
    # Requests in a bracketing step (doubling or halving, far from the knee until one fails). The search then
    # bisects with ``accept_knee_requests`` per step and re-measures a bracketing pass before calling it the
    # knee, so the figure published always rests on a full step.
    accept_probe_requests: int = 200
    # Why a quarter of a core: the bound for the generator at the highest rate the search reaches,
    # so on two shared cores the system under test keeps the rest.
    accept_loadgen_core_share: float = 0.25
    # email-io offers its emails at this multiple of the ideal throughput (slots / SMTP delay): above 1 so a
    # message is always waiting for every slot, not so far above that the API's queue is what is measured.
    email_offered_factor: float = 2.0
    # cpu-heavy offers its resizes at this rate (open loop): far above what 2 cores resize, so every slot
    # is busy while the probe runs.
    cpu_rate_hz: float = 20.0
    # Closed-loop senders of the warm-up and the fault pass's bursts (the scenarios send open loop).
    burst_concurrency: int = 16
    # The httpx client's pool for those (the open-loop generator sizes its own, see below).
    connections: int = 32
    # Open-loop generator: connections open on demand up to this; a request due when all are busy is late.
    loadgen_connections: int = 512
    # The resize job: a generated noise image of this size scaled down (a fraction of a second of CPU).
    image_width: int = 1280
    image_height: int = 720
    warmup_n: int = 20
    drain_timeout_s: float = 120.0
    stall_timeout_s: float = 30.0
    # The short fault pass (kill-worker in both queue configurations, deploy in the safe one). It waits for
    # the slowest runner's redelivery bound, minutes rather than seconds: too long for ``quick``.
    fault_pass: bool = True
    # The accept scenario's API cost decomposition (two more sends per runner).
    decomposition: bool = True
    # Measure it in this many repeats, the first ones (0: every repeat). Its parts are a cost per request
    # over many requests, not a capacity that drifts with the machine, and it is a sixth of a default run.
    decomposition_repeats: int = 0
    # Every broker runner's drain is repeated through its library's own minimal worker (the fidelity check,
    # fbt_tasks.reference), at the same N, layout and broker, in the same repeat.
    fidelity: bool = True
    # The paired drain behind it (fbt_bench.scenarios.paired) queues, on each side, as many jobs as the
    # runner drained alone in this many seconds: side by side each has half the machine, so both drain for
    # about twice that.
    fidelity_s: float = 6.0
    # The brokers measured when --brokers is not given (None: every broker this machine has).
    default_brokers: tuple[str, ...] | None = None
    # The hosts topology (fbt_devstack.netns): each runner measured once per round-trip time to the broker.
    # Empty: everything on one loopback, no root needed.
    rtts_ms: tuple[float, ...] = ()
    # The scenarios this profile runs when the command line names none (empty: all of them).
    scenarios: tuple[str, ...] = ()
    # The slot sweep (fbt_bench.scaling): each runner measured once per slot count, split into processes x
    # threads by one stated rule. Empty: every runner at worker_processes x worker_threads only.
    slot_sweep: tuple[int, ...] = ()
    # In a sweep, email-io sends this many emails per slot (0: email_n at every point), so every point's
    # window lasts about the same email_per_slot x smtp_delay_ms at the ideal throughput.
    email_per_slot: int = 0
    # cpu-sweep (fbt_bench.scenarios.cpu_sweep): the resize rate at which /health p99 breaks the SLO, found by
    # doubling from the start rate, then bisecting to within the resolution (a ratio), in at most max_points.
    sweep_start_hz: float = 4.0
    # Far above what two cores resize (a 1280x720 -> 320x180 resize costs milliseconds of CPU), so a queue
    # that never breaks the SLO is shown with the highest rate it passed as a lower bound.
    sweep_max_hz: float = 256.0
    sweep_resolution: float = 1.25
    sweep_max_points: int = 9
    # Each point: a warm-up, then a window long enough for sweep_min_probes probes at the probe rate.
    sweep_warmup_s: float = 2.0
    sweep_window_s: float = 10.0
    sweep_min_probes: int = 1000
    # shared: every process on every core; split: the API on one core, workers and broker on the other.
    sweep_placements: tuple[Literal["shared", "split"], ...] = ("shared", "split")
    # Scenarios measured in the first repeat only and on each runner's default broker only: their windows
    # are long, and where a task's CPU runs (cpu-sweep) or where a backlog waits (burst) depends on the
    # runner, not on which broker carries its messages. Empty: every scenario in every repeat, on every broker.
    once: tuple[str, ...] = ()
    # burst (fbt_bench.scenarios.burst): emails at this multiple of the ideal throughput for burst_s, enough
    # for a backlog several times what the slots hold, then recovery with only the /health probe.
    burst_factor: float = 4.0
    burst_s: float = 5.0

    @property
    def slots(self) -> int:
        return self.worker_processes * self.worker_threads

    def with_overrides(self, **changes: Any) -> "Profile":
        """A copy with some fields replaced; ``None`` values are ignored (CLI options left unset)."""
        given = {key: value for key, value in changes.items() if value is not None}
        return dataclasses.replace(self, **given) if given else self

    def accept_step_s(self, rate: float, requests: int | None = None) -> float:
        """How long one accept step sends ``requests`` (default: the knee's count), within the step bounds."""
        wanted = self.accept_knee_requests if requests is None else requests
        return min(self.accept_max_step_s, max(self.accept_min_step_s, wanted / rate))

    def parameters(self) -> dict[str, Any]:
        """The run's parameters for results.json."""
        out = dataclasses.asdict(self)
        out.pop("name")
        out["steady_fractions"] = list(self.steady_fractions)
        out["default_brokers"] = list(self.default_brokers) if self.default_brokers is not None else None
        out["rtts_ms"] = list(self.rtts_ms)
        out["scenarios"] = list(self.scenarios)
        out["slot_sweep"] = list(self.slot_sweep)
        out["sweep_placements"] = list(self.sweep_placements)
        out["once"] = list(self.once)
        out["slots"] = self.slots
        return out

    @property
    def floors_apply(self) -> bool:
        """Whether the floors belong in this profile's runs by default: not across hosts (they run on one
        loopback) nor in a slot sweep (the sweep compares each runner with its own ideal)."""
        return not (self.rtts_ms or self.slot_sweep)


# Quick is a smoke run: one repeat, every runner on every broker this machine has (so a RabbitMQ install
# shows up in the first run a user tries; --brokers redis skips the node's start), a coarse accept search
# from a higher start, no API cost decomposition, and small drains, windows and bursts. Its figures rest
# on few samples; the report says so.
QUICK = Profile(
    name="quick",
    repeats=1,
    worker_processes=2,
    worker_threads=4,
    slo_ms=50.0,
    accept_start_rate=100.0,
    accept_ceiling_rate=12800.0,
    accept_min_step_s=0.5,
    accept_max_step_s=1.5,
    accept_max_halvings=2,
    accept_knee_requests=100,
    accept_probe_requests=100,
    accept_resolution=0.5,
    decomposition_rate=120.0,
    decomposition_fraction=0.5,
    drain_n=300,
    fidelity_s=2.0,
    steady_fractions=(0.5,),
    steady_completions=100,
    steady_warmup_s=0.2,
    steady_max_window_s=1.5,
    email_n=24,
    smtp_delay_ms=100,
    cpu_n=4,
    probe_rate_hz=50.0,
    probe_idle_s=0.3,
    mixed_rate=50,
    mixed_duration_s=1.0,
    warmup_n=4,
    drain_timeout_s=60.0,
    stall_timeout_s=20.0,
    fault_pass=False,
    decomposition=False,
    scenarios=SIX,
)

DEFAULT = Profile(
    name="default",
    repeats=3,
    worker_processes=2,
    worker_threads=4,
    slo_ms=50.0,
    # Every runner here accepts more than 200/s; starting lower only lengthens each search (it still halves
    # below the start when a step fails).
    accept_start_rate=200.0,
    accept_ceiling_rate=12800.0,
    accept_min_step_s=1.0,
    accept_max_step_s=20.0,
    accept_max_halvings=3,
    accept_knee_requests=1000,
    accept_resolution=0.1,
    decomposition_rate=120.0,
    decomposition_fraction=0.5,
    drain_n=5000,
    steady_fractions=(0.5, 0.8),
    steady_completions=1000,
    steady_warmup_s=1.0,
    steady_max_window_s=20.0,
    email_n=200,
    smtp_delay_ms=100,
    cpu_n=40,
    probe_rate_hz=50.0,
    probe_idle_s=2.0,
    mixed_rate=100,
    mixed_duration_s=10.0,
    # A cap, not the usual end: a drain ends when the ledger has every job, or after stall_timeout_s without
    # one. The slowest worker path (a fork per job) needs minutes for drain_n jobs on two cores.
    drain_timeout_s=900.0,
    scenarios=VERDICT,
    once=("cpu-sweep", "burst"),
    decomposition_repeats=1,
    # Three doublings: a runner that still passes 32/s reads "at least 32/s" in the verdict (the report marks
    # a bound it did not reach); full sweeps on to 256/s for the queues' own thresholds.
    sweep_start_hz=8.0,
    sweep_max_hz=32.0,
)

FULL = DEFAULT.with_overrides(
    name="full",
    repeats=5,
    accept_knee_requests=3000,
    accept_probe_requests=500,
    accept_resolution=0.05,
    drain_n=20_000,
    steady_completions=5000,
    steady_warmup_s=3.0,
    steady_max_window_s=60.0,
    email_n=400,
    cpu_n=80,
    probe_idle_s=5.0,
    mixed_duration_s=30.0,
    drain_timeout_s=1800.0,
    scenarios=SCENARIOS,
    once=(),
    decomposition_repeats=0,
    sweep_start_hz=4.0,
    sweep_max_hz=256.0,
)

# The broker on another "host": drain and steady at each RTT, every runner on Redis, on QUICK's sizes but
# with longer drains and steady windows, so a 5 ms RTT's cost shows above a shared machine's noise.
NETWORK = QUICK.with_overrides(
    name="network",
    rtts_ms=(0.0, 1.0, 5.0),
    scenarios=("drain", "steady"),
    drain_n=1000,
    steady_completions=300,
    steady_max_window_s=5.0,
)

# The slot sweep (issue #13): every runner on its default broker at 1 to 32 slots, email-io (I/O-bound: the
# ideal is slots / SMTP delay) and drain (CPU-bound), one repeat, small sizes so the whole sweep stays in
# minutes on 2 cores. A longer SMTP delay than the other profiles' keeps 32 slots' ideal rate within what
# one API accepts on a shared machine; email_per_slot keeps every point's window about equally long.
SCALING = QUICK.with_overrides(
    name="scaling",
    slot_sweep=(1, 2, 4, 8, 16, 32),
    scenarios=("drain", "email-io"),
    default_brokers=("redis",),
    drain_n=300,
    smtp_delay_ms=200,
    email_per_slot=10,
    # The sweep compares each runner with its own ideal; a reference at every slot count would double it.
    fidelity=False,
    # A runner far slower than the rest at few slots is recorded partial rather than holding the sweep up.
    drain_timeout_s=30.0,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (QUICK, DEFAULT, FULL, NETWORK, SCALING)}
