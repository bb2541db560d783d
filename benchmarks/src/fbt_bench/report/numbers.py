"""How the report writes numbers and cites them: three significant figures, flags, table and figure anchors."""

from fbt_bench.measuring.stats import Spread

NOISY_MARK = "⚠"


def table_id(scenario: str, part: str = "") -> str:
    return f"tab-{scenario}-{part}" if part else f"tab-{scenario}"


def figure_id(chart: str, scenario: str = "") -> str:
    return f"fig-{chart}-{scenario}" if scenario else f"fig-{chart}"


def repeats_text(n: int) -> str:
    return "1 repeat" if n == 1 else f"{n} repeats"


def fmt(x: float | None, unit: str = "") -> str:
    """Three significant figures, thousands separators: 1626.4 -> '1,626', 0.01234 -> '0.0123'."""
    if x is None:
        return "n/a"
    if x == 0:
        text = "0"
    elif x == int(x) and abs(x) < 1e15:
        text = f"{int(x):,}"  # counts, rates and parameters stay exact: 50 not 50.0
    elif abs(x) >= 100:
        text = f"{x:,.0f}"
    elif abs(x) >= 10:
        text = f"{x:.1f}"
    else:
        text = f"{x:.3g}"
    return f"{text}{unit}"


def possessive(name: str) -> str:
    return f"{name}'" if name.endswith("s") else f"{name}'s"


def fmt_ratio(x: float | None) -> str:
    return "n/a" if x is None else f"×{fmt(x)}"


def fmt_pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.0f}%"


def fmt_spread(s: Spread | None, unit: str = "") -> str:
    """The median with its noise flag; the range and CV go in their own table columns."""
    if s is None:
        return "n/a"
    return fmt(s.median, unit) + (f" {NOISY_MARK}" if s.noisy else "")


def fmt_range(s: Spread | None) -> str:
    return "n/a" if s is None else f"{fmt(s.low)}–{fmt(s.high)}"


def fmt_cv(s: Spread | None) -> str:
    if s is None or s.cv is None:
        return "n/a"
    return f"{s.cv * 100:.0f}%" + (f" {NOISY_MARK}" if s.noisy else "")
