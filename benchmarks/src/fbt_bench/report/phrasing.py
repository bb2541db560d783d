"""Findings and how they phrase comparisons: rankings, head-to-heads and ties within noise."""

from collections.abc import Sequence
from dataclasses import dataclass

from fbt_bench.measuring.stats import NOISY_CV, Spread
from fbt_bench.report.analysis import Metric, RepeatSet, compare
from fbt_bench.report.numbers import fmt, fmt_range, fmt_ratio, fmt_spread, repeats_text
from fbt_bench.report.tiers import tiers


@dataclass(frozen=True)
class Finding:
    kind: str  # "alert" (missing/duplicated data or a loss), "warning", "noisy", "surprise" or "result"
    text: str
    scenario: str | None
    refs: tuple[str, ...]  # anchors of the table/figure the numbers come from


Entry = tuple[RepeatSet, Spread]


def measured(groups: Sequence[RepeatSet], metric: Metric) -> list[Entry]:
    return [(g, s) for g in groups if (s := g.spread(metric)) is not None]


def ranking(entries: Sequence[Entry], unit: str, *, higher_is_better: bool) -> str:
    """'Dramatiq 3,100/s > tied: Celery 1,900/s, RQ 1,850/s (3 repeats)': tiers of overlapping ranges
    (``fbt_bench.report.tiers``), so no chain of ties runs across a gap."""
    step = " > " if higher_is_better else " < "
    parts = []
    for tier in tiers(entries, lambda e: e[1], higher_is_better=higher_is_better):
        figures = ", ".join(f"{group.tag()} {fmt_spread(spread, unit)}" for group, spread in tier)
        parts.append(f"tied: {figures}" if len(tier) > 1 else figures)
    return step.join(parts) + f" ({repeats_text(min((s.n for _, s in entries), default=0))})"


def versus(a: Entry, b: Entry, unit: str, *, higher_is_better: bool = True) -> str:
    """'Dramatiq 3,100/s ahead of Celery (1,900/s, ×1.6): ranges apart across 3 repeats', or an explicit
    'indistinguishable within noise (3 repeats)'. "Ahead" means better: a larger rate, or with
    higher_is_better false a smaller latency or footprint (the caller puts the better one first)."""
    (ga, sa), (gb, sb) = a, b
    n = repeats_text(min(sa.n, sb.n))
    if compare(sa, sb) == 0 and min(sa.n, sb.n) < 2:
        return (
            f"{ga.tag()} ({fmt(sa.median, unit)}) and {gb.tag()} ({fmt(sb.median, unit)}) are within "
            f"{NOISY_CV:.0%} of each other on a single repeat: indistinguishable within noise ({n})"
        )
    if compare(sa, sb) == 0:
        return (
            f"{ga.tag()} ({fmt(sa.median, unit)}, range {fmt_range(sa)}) and {gb.tag()} "
            f"({fmt(sb.median, unit)}, range {fmt_range(sb)}) are indistinguishable within noise ({n})"
        )
    if higher_is_better:
        ratio = fmt_ratio(sa.median / sb.median if sb.median else None)
    else:
        ratio = f"{fmt_ratio(sb.median / sa.median if sa.median else None)} as much"
    apart = "min–max ranges apart" if min(sa.n, sb.n) > 1 else f"more than {NOISY_CV:.0%} apart"
    return (
        f"{ga.tag()} {fmt(sa.median, unit)} ahead of {gb.tag()} ({fmt(sb.median, unit)}, "
        f"{ratio}): {apart} across {n}"
    )


def best(entries: Sequence[Entry], *, higher_is_better: bool) -> list[Entry]:
    """The best entry and every entry whose range overlaps it: a tie within noise."""
    if not entries:
        return []
    top = (max if higher_is_better else min)(entries, key=lambda e: e[1].median)
    return [top, *(e for e in entries if e is not top and compare(e[1], top[1]) == 0)]


def names(entries: Sequence[Entry]) -> str:
    return ", ".join(g.tag() for g, _ in entries)
