"""PNG charts drawn with matplotlib's object API (no pyplot: no GUI backend, no global state)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure


def new_figure(panels: int = 1, width_per_panel: float = 6.0) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(width_per_panel * panels, 4.2), layout="constrained")
    axes = [fig.add_subplot(1, panels, i + 1) for i in range(panels)]
    return fig, axes


def bars(
    ax: Axes,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    ylabel: str,
    log: bool = False,
) -> None:
    positions = range(len(labels))
    drawn = ax.bar(positions, values, color="tab:blue")
    ax.bar_label(drawn, labels=[_short(v) for v in values], fontsize=8)
    ax.set_xticks(list(positions), labels=list(labels), rotation=20, ha="right", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")


def grouped_bars(
    ax: Axes,
    groups: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    ylabel: str,
    log: bool = False,
) -> None:
    width = 0.8 / max(1, len(series))
    for index, (name, values) in enumerate(series.items()):
        offsets = [g + index * width for g in range(len(groups))]
        ax.bar(offsets, values, width=width, label=name)
    ax.set_xticks(
        [g + width * (len(series) - 1) / 2 for g in range(len(groups))],
        labels=list(groups),
        fontsize=8,
    )
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    if log:
        ax.set_yscale("log")


def lines(
    ax: Axes,
    xs: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    logx: bool = False,
    logy: bool = False,
) -> None:
    for name, values in series.items():
        ax.plot(list(xs)[: len(values)], list(values), marker="o", label=name)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")


def timeline(
    ax: Axes,
    spans: Sequence[tuple[str, float, float]],
    *,
    title: str,
) -> None:
    """Horizontal bars from start to end, one per labelled span (a Gantt chart)."""
    for index, (_, start, end) in enumerate(spans):
        ax.barh(index, end - start, left=start, color="tab:orange")
    ax.set_yticks(range(len(spans)), labels=[label for label, _, _ in spans], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since start")
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)


def save(fig: Figure, path: Path | None, suptitle: str) -> str | None:
    if path is None:
        return None
    fig.suptitle(suptitle, fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return str(path)


def _short(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 1:
        return f"{value:.1f}"
    return f"{value:.2g}"
