"""Tiers: how the report ranks figures measured with noise, so no ranking hides a gap or invents one.

A tier is the best figure left and every other figure whose min-max range overlaps it; the next tier starts
with the best figure outside it. Within a tier nothing is ranked ("tied"); between tiers the ranges are apart.
"""

from collections.abc import Callable, Sequence
from typing import TypeVar

from fbt_bench.measuring.stats import Spread
from fbt_bench.report.analysis import compare

T = TypeVar("T")


def tiers(items: Sequence[T], spread: Callable[[T], Spread], *, higher_is_better: bool) -> list[list[T]]:
    """``items`` in tiers, best first; within a tier in order of their medians."""
    left = sorted(items, key=lambda item: spread(item).median, reverse=higher_is_better)
    grouped: list[list[T]] = []
    while left:
        head = left[0]
        tier = [item for item in left if item is head or compare(spread(item), spread(head)) == 0]
        grouped.append(tier)
        left = [item for item in left if all(item is not member for member in tier)]
    return grouped
