"""Latency percentiles from HdrHistogram, CDFs for charts, and spread across repeats.

Values are recorded in integer microseconds with 3 significant figures, so every reported percentile is
within 0.1% of the true sample value, from 1 µs up to an hour.
"""

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypedDict

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour: nothing slower is a latency any more, it is a lost task
SIGNIFICANT_FIGURES = 3
MAX_CDF_POINTS = 200
# A repeat set whose coefficient of variation exceeds this is flagged: the machine was too noisy to trust it.
NOISY_CV = 0.15


class LatencySummary(TypedDict):
    p50: float
    p90: float
    p99: float
    p999: float
    max: float
    mean: float
    n: int  # the number of samples every figure above rests on
    count: int  # the same number under its schema-1 name, kept while readers of old files move to ``n``


class RepeatSpread(TypedDict):
    median: float
    min: float
    max: float
    cv: float
    noisy: bool


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)


def record_ms(histogram: HdrHistogram, value_ms: float) -> None:
    """Record one latency; negative values (clock skew between processes) count as zero, huge ones cap."""
    value_us = min(max(round(value_ms * 1000.0), 0), HIGHEST_US)
    histogram.record_value(value_us)


def histogram_of(values_ms: Iterable[float]) -> HdrHistogram:
    histogram = new_histogram()
    for value in values_ms:
        record_ms(histogram, value)
    return histogram


def summarize(histogram: HdrHistogram) -> LatencySummary:
    """p50/p90/p99/p99.9/max/mean in milliseconds with their sample count ``n``; all zero with n 0 when
    empty. Every figure is kept whatever ``n``: the reader decides (below 100 samples p99 is the max)."""
    count = histogram.get_total_count()
    if count == 0:
        return LatencySummary(p50=0.0, p90=0.0, p99=0.0, p999=0.0, max=0.0, mean=0.0, n=0, count=0)
    at = histogram.get_percentile_to_value_dict([50.0, 90.0, 99.0, 99.9])
    return LatencySummary(
        p50=_ms(at[50.0]),
        p90=_ms(at[90.0]),
        p99=_ms(at[99.0]),
        p999=_ms(at[99.9]),
        max=_ms(histogram.get_max_value()),
        mean=round(histogram.get_mean_value() / 1000.0, 3),
        n=count,
        count=count,
    )


def summarize_ms(values_ms: Iterable[float]) -> LatencySummary:
    return summarize(histogram_of(values_ms))


def cdf(histogram: HdrHistogram, max_points: int = MAX_CDF_POINTS) -> list[list[float]]:
    """The empirical CDF as ``[[latency_ms, cumulative_fraction], ...]``, at most ``max_points`` long."""
    total = histogram.get_total_count()
    if total == 0:
        return []
    points: list[list[float]] = []
    seen = 0
    for item in histogram.get_recorded_iterator():
        seen += item.count_at_value_iterated_to
        points.append(
            [_ms(histogram.get_highest_equivalent_value(item.value_iterated_to)), round(seen / total, 6)]
        )
    return downsample(points, max_points)


def downsample(points: Sequence[Sequence[float]], max_points: int) -> list[list[float]]:
    """Keep at most ``max_points`` evenly spaced points, always including the first and the last."""
    if max_points < 2:
        raise ValueError("max_points must be at least 2")
    if len(points) <= max_points:
        return [list(p) for p in points]
    step = (len(points) - 1) / (max_points - 1)
    indices = sorted({round(i * step) for i in range(max_points)})
    return [list(points[i]) for i in indices]


@dataclass(frozen=True)
class Spread:
    """One figure across repeats: the median, the min-max range and the coefficient of variation.

    The one model of spread: the harness's noise warnings (``spread``) and the report's rankings use it.
    """

    median: float
    low: float
    high: float
    cv: float | None  # None with a single repeat (no spread to speak of) or a zero mean
    n: int

    @classmethod
    def of(cls, values: Iterable[float | None]) -> "Spread | None":
        """The spread of the values given (``None`` skipped); None if there are none."""
        xs = [float(v) for v in values if v is not None]
        if not xs:
            return None
        mean = statistics.fmean(xs)
        # Sample standard deviation: the repeats are a sample of the runs this machine could have produced.
        cv = statistics.stdev(xs) / mean if len(xs) > 1 and mean > 0 else None
        return cls(statistics.median(xs), min(xs), max(xs), cv, len(xs))

    @property
    def noisy(self) -> bool:
        return self.cv is not None and self.cv > NOISY_CV

    def bounds(self) -> tuple[float, float]:
        """The range comparisons use: min-max, or ±NOISY_CV around a single repeat (no spread measured)."""
        if self.n >= 2:
            return self.low, self.high
        return self.median * (1 - NOISY_CV), self.median * (1 + NOISY_CV)


def spread(values: Sequence[float]) -> RepeatSpread:
    """Median, range and coefficient of variation of one metric across repeats, as results.json words it."""
    found = Spread.of(values)
    if found is None:
        raise ValueError("spread of no values")
    cv = found.cv or 0.0
    return RepeatSpread(
        median=found.median,
        min=found.low,
        max=found.high,
        cv=round(cv, 4),
        noisy=found.noisy,
    )


def _ms(value_us: float) -> float:
    return round(value_us / 1000.0, 3) if math.isfinite(value_us) else 0.0
