"""The report's figures as inline SVG strings (matplotlib, Agg), so report.html is one self-contained file.

Charts take plain numbers, never a results document: report.py decides what is plotted, this module only
draws it. Text stays text in the SVG (svg.fonttype none) to keep files small and searchable, and every id is
prefixed with the chart's id because several SVGs share one HTML document.
"""

import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless and deterministic; the harness runs without a display

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.typing import RcKeyType

Points = Sequence[Sequence[float]]

# One colour per runner everywhere, so a reader can follow a runner from chart to chart: runners take these
# in the report's order (twelve that stay apart: Tableau's ten without its grey, then three of Paul Tol's),
# then the extra ones; the floors are grey and black. Lines also carry a marker of their own, so two
# series stay apart where colours come close or the page is printed in grey.
RUNNER_COLOURS = ("#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
EXTRA_COLOURS = ("#bcbd22", "#332288", "#882255", "#44aa99")
FLOOR_COLOURS = ("#7f7f7f", "#111111")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
GROUP_COLOURS = {
    "api": "#1f77b4",
    "workers": "#ff7f0e",
    "broker": "#d62728",
    "bare FastAPI route": "#9ecae1",
    "library enqueue": "#3182bd",
    "project's share": "#e6550d",
}
FIGSIZE = (7.2, 3.6)
RC: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


@dataclass(frozen=True)
class Bar:
    label: str
    median: float
    low: float
    high: float
    flag: str = ""  # e.g. "partial" or "noisy", printed above the bar


@dataclass(frozen=True)
class Palette:
    """A colour per runner (by display name), and which names are floors (dashed lines, hatched bars)."""

    colours: Mapping[str, str]
    floors: frozenset[str] = frozenset()
    markers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, runners: Sequence[str], floors: Sequence[str]) -> "Palette":
        """Runners in the report's order take the runner colours, then the extra ones; floors grey, black."""
        colours = dict(zip(runners, (*RUNNER_COLOURS, *EXTRA_COLOURS), strict=False))
        colours.update(zip(floors, FLOOR_COLOURS, strict=False))
        markers = dict(zip((*runners, *floors), MARKERS * 2, strict=False))
        return cls(colours, frozenset(floors), markers)

    def colour(self, label: str, fallback_index: int = 0) -> str:
        """The runner's colour; labels like 'Celery (defaults)' share their runner's colour, but a runner whose
        own name has parentheses ('BackgroundTasks (async)') keeps its own."""
        fallback = EXTRA_COLOURS[fallback_index % len(EXTRA_COLOURS)]
        return self.colours.get(label) or self.colours.get(_base(label), fallback)

    def marker(self, label: str, fallback_index: int = 0) -> str:
        fallback = MARKERS[fallback_index % len(MARKERS)]
        return self.markers.get(label) or self.markers.get(_base(label), fallback)

    def is_floor(self, label: str) -> bool:
        return _base(label) in self.floors


def _number(x: float) -> str:
    """As the report's tables print a figure: 26,990 not 2.699e+04, 812 not 812.3, 0.0123 as is."""
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def _base(label: str) -> str:
    return label.split(" (")[0].split(" [")[0]


def _figure() -> Figure:
    return Figure(figsize=FIGSIZE, layout="constrained")


def _legend(ax: Axes) -> None:
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        # Outside the plot area: inside, it hides exactly the tails a reader is looking for.
        ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def latency_cdf(chart_id: str, series: Mapping[str, Sequence[Points]], title: str, palette: Palette) -> str:
    """One line per runner and repeat (same colour per runner): [latency_ms, fraction] points, log-x."""
    with matplotlib.rc_context(RC):
        fig = _figure()
        ax = fig.add_subplot()
        for i, (label, repeats) in enumerate(series.items()):
            style = "--" if palette.is_floor(label) else "-"
            for j, points in enumerate(repeats):
                xs = [max(p[0], 1e-3) for p in points]  # log axis: clamp a 0 ms bucket to 1 µs
                ys = [p[1] for p in points]
                ax.step(
                    xs,
                    ys,
                    where="post",
                    linestyle=style,
                    color=palette.colour(label, i),
                    marker=palette.marker(label, i),
                    markevery=max(1, len(xs) // 6),
                    markersize=4,
                    alpha=0.85,
                    linewidth=1.3,
                    label=label if j == 0 else None,
                )
        ax.set_xscale("log")
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("end-to-end latency, enqueue → finished (ms, log scale)")
        ax.set_ylabel("fraction of tasks")
        ax.set_title(title)
        _legend(ax)
        return _svg(fig, chart_id, title)


def _label_bars(ax: Axes, bars: Sequence[Bar]) -> None:
    """Each bar's median above its whisker, and its flag (if any) above that."""
    for x, bar in enumerate(bars):
        ax.annotate(
            _number(bar.median),
            (x, bar.high),
            textcoords="offset points",
            xytext=(0, 3),
            ha="center",
            fontsize=8,
        )
        if bar.flag:
            ax.annotate(
                bar.flag,
                (x, bar.high),
                textcoords="offset points",
                xytext=(0, 13),
                ha="center",
                fontsize=8,
                color="#b00020",
                fontweight="bold",
            )


def throughput_bars(
    chart_id: str,
    bars: Sequence[Bar],
    title: str,
    palette: Palette,
    *,
    references: Sequence[tuple[str, float]] = (),
    unit: str = "tasks/s",
) -> str:
    """Median bars with min-max whiskers, optional horizontal reference lines (e.g. the ideal throughput)."""
    with matplotlib.rc_context(RC):
        fig = _figure()
        ax = fig.add_subplot()
        xs = range(len(bars))
        medians = [b.median for b in bars]
        errors = [[b.median - b.low for b in bars], [b.high - b.median for b in bars]]
        colours = [palette.colour(b.label, i) for i, b in enumerate(bars)]
        hatches = ["//" if palette.is_floor(b.label) else "" for b in bars]
        drawn = ax.bar(xs, medians, color=colours, yerr=errors, capsize=4, ecolor="#333333", alpha=0.9)
        for patch, hatch in zip(drawn, hatches, strict=True):
            patch.set_hatch(hatch)
        _label_bars(ax, bars)
        for k, (name, value) in enumerate(references):
            ax.axhline(
                value,
                color=EXTRA_COLOURS[k % len(EXTRA_COLOURS)],
                linestyle="--",
                linewidth=1.2,
                label=f"{name}: {value:,.4g} {unit}",
            )
        positive = [v for v in [*medians, *(v for _, v in references)] if v > 0]
        if positive and max(positive) / min(positive) > 30:
            ax.set_yscale("log")  # baselines can be 100x a framework; linear bars would hide the runners
            ax.set_ylabel(f"{unit} (log scale)")
        else:
            ax.set_ylabel(unit)
        if any(b.flag for b in bars) and ax.get_yscale() == "linear":
            ax.set_ylim(top=max(b.high for b in bars) * 1.2)  # room for the flags under the title
        # Steep enough that ten long names never print over each other.
        ax.set_xticks(list(xs), [b.label for b in bars], rotation=35, ha="right", rotation_mode="anchor")
        ax.set_title(title)
        _legend(ax)
        return _svg(fig, chart_id, title)


def rtt_lines(
    chart_id: str,
    throughput: Mapping[str, Points],
    latency: Mapping[str, Mapping[str, Points]],
    title: str,
    palette: Palette,
) -> str:
    """Two panels against the RTT: throughput per runner, and each runner's latency percentiles (p50 solid,
    others dashed) in the runner's colour."""
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(FIGSIZE[0] * 1.4, FIGSIZE[1]), layout="constrained")
        left, right = fig.subplots(1, 2)
        for name, points in throughput.items():
            left.plot(
                [x for x, _ in points], [y for _, y in points], "o-", color=palette.colour(name), label=name
            )
        for name, by_percentile in latency.items():
            for percentile, points in by_percentile.items():
                style = "o-" if percentile == "p50" else "s--"
                xs, ys = [x for x, _ in points], [y for _, y in points]
                right.plot(xs, ys, style, color=palette.colour(name), label=f"{name} {percentile}")
        left.set(xlabel="RTT to the broker (ms)", ylabel="drain tasks/s", title="Throughput")
        right.set(xlabel="RTT to the broker (ms)", ylabel="steady end-to-end ms", title="Latency")
        _legend(right)
        return _svg(fig, chart_id, title)


@dataclass(frozen=True)
class Panel:
    """One panel of ``sweep_lines``: a line per runner against x, and dashed references (ideal lines): a
    reference named after a runner takes its colour, any other is black."""

    title: str
    ylabel: str
    series: Mapping[str, Points]
    references: Mapping[str, Points]


def sweep_lines(chart_id: str, panels: Sequence[Panel], xlabel: str, title: str, palette: Palette) -> str:
    """Panels side by side against a doubling x (log2 axis, log y): runners solid, references dashed."""
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(FIGSIZE[0] * 0.6 * len(panels), FIGSIZE[1]), layout="constrained")
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        xs = sorted({p[0] for panel in panels for points in panel.series.values() for p in points})
        for ax, panel in zip(axes, panels, strict=True):
            for name, points in panel.references.items():
                colour = palette.colours.get(name, "#111111")
                label = "ideal" if name not in palette.colours else None
                ax.plot([p[0] for p in points], [p[1] for p in points], "--", color=colour, label=label)
            for name, points in panel.series.items():
                ax.plot(
                    [p[0] for p in points],
                    [p[1] for p in points],
                    "o-",
                    color=palette.colour(name),
                    label=name,
                )
            ax.set_xscale("log", base=2)
            ax.set_xticks(xs, [f"{x:g}" for x in xs])
            ax.minorticks_off()
            if any(p[1] > 0 for points in panel.series.values() for p in points):
                ax.set_yscale("log")
            ax.set(xlabel=xlabel, ylabel=panel.ylabel, title=panel.title)
        # One legend for every panel: each runner once, and the black ideal wherever a panel drew it.
        labelled = {label: h for ax in axes for h, label in zip(*ax.get_legend_handles_labels(), strict=True)}
        if labelled:
            axes[-1].legend(
                list(labelled.values()),
                list(labelled),
                fontsize=8,
                frameon=False,
                loc="upper left",
                bbox_to_anchor=(1.01, 1.0),
            )
        fig.suptitle(title)
        return _svg(fig, chart_id, title)


def probe_timeseries(chart_id: str, series: Mapping[str, Points], title: str, palette: Palette) -> str:
    """GET /health latency over time, one line per runner, log-y: stalls show up as spikes."""
    with matplotlib.rc_context(RC):
        fig = _figure()
        ax = fig.add_subplot()
        for i, (label, points) in enumerate(series.items()):
            ax.plot(
                [p[0] for p in points],
                [max(p[1], 1e-3) for p in points],
                color=palette.colour(label, i),
                linewidth=1.0,
                alpha=0.85,
                label=label,
            )
        ax.set_yscale("log")
        ax.set_xlabel("seconds since the cpu-heavy load started")
        ax.set_ylabel("GET /health latency (ms, log scale)")
        ax.set_title(title)
        _legend(ax)
        return _svg(fig, chart_id, title)


# One step of a rate sweep: (offered rate, p50, p99 or None below 100 samples, max or None).
Step = tuple[float, float | None, float | None, float | None]


def enqueue_vs_rate(
    chart_id: str,
    series: Mapping[str, Sequence[Step]],
    slo_ms: float,
    title: str,
    palette: Palette,
) -> str:
    """Per runner, request latency against offered rate, with the SLO as a red line: p99 solid, p50 dotted,
    and a hollow triangle for the max where a step had too few samples for a p99."""
    with matplotlib.rc_context(RC):
        fig = _figure()
        ax = fig.add_subplot()
        for i, (label, steps) in enumerate(series.items()):
            c = palette.colour(label, i)
            p99 = [(rate, v) for rate, _, v, _ in steps if v is not None]
            p50 = [(rate, v) for rate, v, _, _ in steps if v is not None]
            top = [(rate, m) for rate, _, v, m in steps if v is None and m is not None]
            ax.plot([r for r, _ in p99], [v for _, v in p99], "o-", color=c, label=label)
            ax.plot([r for r, _ in p50], [v for _, v in p50], "x:", color=c, alpha=0.7)
            ax.plot([r for r, _ in top], [v for _, v in top], "^", color=c, markerfacecolor="none")
        ax.axhline(slo_ms, color="#b00020", linestyle="--", linewidth=1.4, label=f"SLO {slo_ms:g} ms")
        rates = sorted({step[0] for steps in series.values() for step in steps})
        ax.set_xscale("log", base=2)  # rates usually double from step to step
        ax.set_xticks(rates, [f"{r:g}" for r in rates])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_xlabel("offered rate (requests/s, open loop)")
        ax.set_ylabel("POST /log/ latency (ms, log)\nsolid p99, dotted p50")
        ax.set_title(title)
        _legend(ax)
        return _svg(fig, chart_id, title)


def memory_bars(
    chart_id: str, usage: Mapping[str, Mapping[str, float]], title: str, measure: str = "RSS"
) -> str:
    """Stacked peak memory (PSS, or RSS in older files) per process group (api, workers, broker, ...)."""
    with matplotlib.rc_context(RC):
        fig = _figure()
        ax = fig.add_subplot()
        labels = list(usage)
        groups = list(dict.fromkeys(g for per_runner in usage.values() for g in per_runner))
        bottoms = [0.0] * len(labels)
        for k, group in enumerate(groups):
            heights = [usage[label].get(group, 0.0) for label in labels]
            ax.bar(
                labels,
                heights,
                bottom=bottoms,
                label=group,
                color=GROUP_COLOURS.get(group, EXTRA_COLOURS[k % len(EXTRA_COLOURS)]),
            )
            bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
        ax.set_ylabel(f"peak {measure} (MB)")
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=35)
        _legend(ax)
        return _svg(fig, chart_id, title)


def stacked_hbars(
    chart_id: str,
    rows: Sequence[tuple[str, Mapping[str, float]]],
    title: str,
    unit: str,
    *,
    reference: Mapping[str, float] | None = None,
) -> str:
    """One horizontal bar per row, stacked by part (e.g. api / broker / workers), part colours fixed;
    ``reference`` marks a value per row (e.g. a target) with a black tick."""
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(FIGSIZE[0], max(2.0, 0.8 + 0.28 * len(rows))), layout="constrained")
        ax = fig.add_subplot()
        labels = [label for label, _ in rows]
        parts = list(dict.fromkeys(part for _, values in rows for part in values))
        lefts = [0.0] * len(rows)
        ys = list(range(len(rows)))
        for k, part in enumerate(parts):
            widths = [values.get(part, 0.0) for _, values in rows]
            colour = GROUP_COLOURS.get(part, EXTRA_COLOURS[k % len(EXTRA_COLOURS)])
            ax.barh(ys, widths, left=lefts, label=part, color=colour, height=0.7)
            lefts = [a + w for a, w in zip(lefts, widths, strict=True)]
        for y, (label, _) in enumerate(rows):
            if reference and label in reference:
                ax.plot([reference[label]] * 2, [y - 0.4, y + 0.4], color="#111111", linewidth=1.6)
        ax.set_yticks(ys, labels)
        ax.invert_yaxis()  # the first row on top, as in the table
        ax.set_xlabel(unit)
        ax.set_title(title)
        _legend(ax)
        return _svg(fig, chart_id, title)


def _svg(fig: Figure, chart_id: str, title: str) -> str:
    buffer = io.BytesIO()
    # hashsalt makes clip-path ids, and so the whole SVG, reproducible for the same numbers.
    with matplotlib.rc_context({"svg.hashsalt": chart_id}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue().decode("utf-8")
    text = text[text.index("<svg") :]  # drop the XML prolog and DOCTYPE: invalid inside HTML
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.DOTALL)
    text = _prefix_ids(text, chart_id)
    return text.replace("<svg ", f'<svg id="{chart_id}-svg" role="img" aria-label="{_attr(title)}" ', 1)


def _prefix_ids(svg: str, prefix: str) -> str:
    """Make ids unique per chart: matplotlib restarts its counters for every figure."""
    ids = set(re.findall(r'\bid="([^"]+)"', svg))

    def ref(match: re.Match[str]) -> str:
        name = match.group(2)
        return f"{match.group(1)}{prefix}-{name}" if name in ids else match.group(0)

    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    return re.sub(r'(url\(#|href="#)([^")]+)', ref, svg)


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
