"""PNG charts for the bench's report and the demos, with matplotlib's object API.

No pyplot: no GUI backend and no global state, so charts can be drawn from any thread and
from tests. Every helper takes the axes to draw on; a missing figure (NaN) draws as an empty
bar labelled "–" rather than breaking the scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

DEFAULT_COLOR = "tab:blue"
# the order pools are listed in: the baseline, then processes, threads, greenlets, a loop
POOL_ORDER = ("solo", "prefork", "threads", "gevent", "asyncio")
# one colour per pool in every chart the lab draws (the collector's live page uses them too)
POOL_COLORS = {
    "solo": "#7f7f7f",
    "prefork": "#d62728",
    "threads": "#1f77b4",
    "gevent": "#2ca02c",
    "asyncio": "#9467bd",
}
OTHER_COLOR = "#555555"


def new_figure(
    panels: int = 1, width_per_panel: float = 6.0, height: float = 4.2
) -> tuple[Figure, list[Axes]]:
    """A figure of ``panels`` axes side by side, at least 6 inches wide."""
    fig = Figure(figsize=(max(width_per_panel * panels, 6.0), height), layout="constrained")
    return fig, [fig.add_subplot(1, panels, i + 1) for i in range(panels)]


def short(value: float) -> str:
    """A bar's label: as many digits as its size needs."""
    if value >= 100:
        return f"{value:.0f}"
    if value >= 1:
        return f"{value:.1f}"
    return f"{value:.2g}"


def _height(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def _decorate(ax: Axes, title: str, ylabel: str, log: bool) -> None:
    if title:
        ax.set_title(title, fontsize=10)
    if ylabel:
        ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")


def bars(
    ax: Axes,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str = "",
    ylabel: str = "",
    colors: Sequence[str] | None = None,
    label: Callable[[float], str] = short,
    log: bool = False,
    rotation: int = 20,
) -> None:
    """One bar per label, each with its value written on top."""
    positions = list(range(len(labels)))
    drawn = ax.bar(positions, [_height(v) for v in values], color=list(colors or [DEFAULT_COLOR]))
    ax.bar_label(drawn, labels=[label(v) if math.isfinite(v) else "–" for v in values], fontsize=7)
    ax.set_xticks(positions, labels=list(labels), rotation=rotation, ha="right", fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    _decorate(ax, title, ylabel, log)


def grouped_bars(
    ax: Axes,
    groups: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    title: str = "",
    ylabel: str = "",
    colors: Sequence[str] | None = None,
    shades: Sequence[float] | None = None,
    log: bool = False,
    rotation: int = 0,
    stacked: bool = False,
) -> None:
    """A group of bars per label, one bar per series, side by side around the label; or,
    ``stacked``, one bar per label with the series on top of each other and the total on top.

    ``colors`` gives each group its colour (a pool's), ``shades`` each series its opacity;
    without colours each series gets the next colour of the cycle.
    """
    width = 0.8 if stacked else 0.8 / max(1, len(series))
    positions = list(range(len(groups)))
    bottoms = [0.0] * len(groups)
    for index, (name, values) in enumerate(series.items()):
        offset = 0.0 if stacked else (index - (len(series) - 1) / 2) * width
        heights = [_height(v) for v in values]
        ax.bar(
            [p + offset for p in positions],
            heights,
            width=width,
            bottom=list(bottoms) if stacked else None,
            label=name,
            color=list(colors) if colors else None,
            alpha=shades[index] if shades else None,
        )
        if stacked:
            bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    if stacked:
        for position, total in zip(positions, bottoms, strict=True):
            ax.annotate(short(total), (position, total), ha="center", va="bottom", fontsize=7)
    ha = "right" if rotation else "center"
    ax.set_xticks(positions, labels=list(groups), rotation=rotation, ha=ha, fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    _decorate(ax, title, ylabel, log)


def lines(
    ax: Axes,
    xs: Sequence[float] | Mapping[str, Sequence[float]],
    series: Mapping[str, Sequence[float]],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    colors: Mapping[str, str] | None = None,
    logx: bool = False,
    logy: bool = False,
) -> None:
    """A line per series; ``xs`` is shared, or given per series."""
    for name, values in series.items():
        own = xs[name] if isinstance(xs, Mapping) else xs
        color = (colors or {}).get(name)
        ax.plot(list(own)[: len(values)], list(values), marker="o", label=name, color=color)
    if xlabel:
        ax.set_xlabel(xlabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    if logx:
        ax.set_xscale("log")
    _decorate(ax, title, ylabel, logy)


def timeline(ax: Axes, spans: Sequence[tuple[str, float, float]], *, title: str) -> None:
    """Horizontal bars from start to end, one per labelled span (a Gantt chart)."""
    for index, (_, start, end) in enumerate(spans):
        ax.barh(index, end - start, left=start, color="tab:orange")
    ax.set_yticks(range(len(spans)), labels=[label for label, _, _ in spans], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since start")
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)


def save(fig: Figure, path: Path | None, suptitle: str, dpi: int = 100) -> str | None:
    """Write the figure as a PNG (its directory made); None, and nothing written, without a path."""
    if path is None:
        return None
    fig.suptitle(suptitle, fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return str(path)
