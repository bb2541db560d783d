"""How the report words what it measured: percentiles with their sample counts, and the rate words.

- Every percentile is printed with the number of samples it comes from ("p99 12.3 ms (n=1,204)").
- Below ``P99_MIN_N`` samples a p99 is the maximum, or next to it, so the report prints the max instead;
  below ``P999_MIN_N`` it prints no p99.9.
- Across repeats, a percentile is quoted at the fewest samples any repeat had: the weakest repeat decides.
- Rates say what was counted: "accepted/s" for accept (requests the API took), "drained/s" only for drain
  (a pre-filled queue emptied by the workers), "completed/s" for everything else.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fbt_bench.measuring.stats import Spread
from fbt_bench.report.analysis import Record, samples
from fbt_bench.report.numbers import fmt

P99_MIN_N = 100
P999_MIN_N = 1000
RATE_WORDS = {"accept": "accepted", "drain": "drained"}
DEFAULT_RATE_WORD = "completed"

Shape = Mapping[str, Any]


def rate_word(scenario: str, records: Iterable[Record] = ()) -> str:
    """What a scenario's rate counts: the word its records carry, else the scenario's own word."""
    for record in records:
        word = record.get("extra", {}).get("rate_word")
        if isinstance(word, str) and word:
            return word
    return RATE_WORDS.get(scenario, DEFAULT_RATE_WORD)


def rate_unit(scenario: str, records: Iterable[Record] = ()) -> str:
    return f"{rate_word(scenario, records)}/s"


def n_text(n: int) -> str:
    return f"n={n:,}"


@dataclass(frozen=True)
class Tail:
    """The tail figure a set of latency summaries supports: p99 from 100 samples up, else the max."""

    label: str  # "p99" or "max"
    spread: Spread
    n: int  # the fewest samples of any summary it comes from

    def text(self, unit: str = " ms") -> str:
        return f"{self.label} {fmt(self.spread.median, unit)} ({n_text(self.n)})"

    def cell(self) -> str:
        """For a table column headed "tail ms (n)": the unit lives in the header."""
        return f"{self.label} {fmt(self.spread.median)} ({n_text(self.n)})"


def _measured(shapes: Iterable[Shape | None]) -> list[Shape]:
    return [s for s in shapes if s and samples(s) > 0]


def tail(shapes: Iterable[Shape | None]) -> Tail | None:
    """p99 (median across the summaries) if every one has at least 100 samples, else the max."""
    return tails(shapes)[0]


def tails(*groups: Iterable[Shape | None]) -> list[Tail | None]:
    """The tail of each group of summaries, all under one label (p99 only if every summary of every
    group supports it), so two tails set side by side or divided are the same percentile."""
    found = [_measured(g) for g in groups]
    every = [s for g in found for s in g]
    if not every:
        return [None] * len(groups)
    p99 = min(samples(s) for s in every) >= P99_MIN_N and all(s.get("p99") is not None for s in every)
    label = "p99" if p99 else "max"
    out: list[Tail | None] = []
    for g in found:
        spread = Spread.of(s.get(label) for s in g) if g else None
        out.append(Tail(label, spread, min(samples(s) for s in g)) if spread and g else None)
    return out


def tail_cell(shapes: Iterable[Shape | None]) -> str:
    found = tail(shapes)
    return found.cell() if found else "n/a"


def percentiles_text(shapes: Sequence[Shape | None], unit: str = " ms") -> str:
    """'p50 1.2 ms, p99 12.3 ms, p99.9 30 ms (n=1,204)': only the percentiles the samples support."""
    found = _measured(shapes)
    if not found:
        return "no samples"
    n = min(samples(s) for s in found)
    parts = [f"p50 {fmt(_median(found, 'p50'), unit)}"]
    if n >= P99_MIN_N:
        parts.append(f"p99 {fmt(_median(found, 'p99'), unit)}")
    if n >= P999_MIN_N:
        parts.append(f"p99.9 {fmt(_median(found, 'p999'), unit)}")
    if n < P99_MIN_N:
        parts.append(f"max {fmt(_median(found, 'max'), unit)}")
    return ", ".join(parts) + f" ({n_text(n)})"


def percentile_cell(shapes: Sequence[Shape | None], pct: str) -> str:
    """One percentile column of a table: blank, with the reason, where the samples do not support it."""
    found = _measured(shapes)
    if not found:
        return "n/a"
    n = min(samples(s) for s in found)
    if pct == "p99" and n < P99_MIN_N:
        return f"— (n<{P99_MIN_N})"
    if pct == "p999" and n < P999_MIN_N:
        return f"— (n<{P999_MIN_N:,})"
    return fmt(_median(found, pct))


def _median(shapes: Sequence[Shape], key: str) -> float | None:
    spread = Spread.of(s.get(key) for s in shapes)
    return spread.median if spread else None
