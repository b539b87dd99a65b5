"""The report's PNG charts (matplotlib's object API: no pyplot, no GUI backend, no state)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from poollab.measure.bench.report.select import (
    POOL_COLORS,
    Cell,
    best_per_pool,
    cells,
    label,
    main_mode,
    main_profile,
    num,
    workloads,
)


@dataclass(frozen=True)
class Chart:
    file: str
    title: str
    caption: str


def _figure(panels: int, width: float = 4.6, height: float = 4.0) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(max(width * panels, 6.0), height), layout="constrained")
    return fig, [fig.add_subplot(1, panels, i + 1) for i in range(panels)]


def _color(cell: Cell) -> str:
    return POOL_COLORS.get(cell["pool"], "#555555")


def _bars(ax: Axes, chosen: Sequence[Cell], values: Sequence[float], fmt: str = "{:,.0f}") -> None:
    positions = list(range(len(chosen)))
    drawn = ax.bar(
        positions, [v if math.isfinite(v) else 0 for v in values], color=[_color(c) for c in chosen]
    )
    ax.bar_label(
        drawn, labels=[fmt.format(v) if math.isfinite(v) else "–" for v in values], fontsize=7
    )
    ax.set_xticks(positions, labels=[label(c) for c in chosen], rotation=30, ha="right", fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)


def _save(fig: Figure, out: Path, name: str, suptitle: str) -> str:
    fig.suptitle(suptitle, fontsize=11)
    fig.savefig(out / name, dpi=90)
    return name


def throughput_chart(results: dict[str, Any], out: Path) -> Chart | None:
    profile, mode = main_profile(results), main_mode(results)
    kinds = workloads(results)
    fig, axes = _figure(len(kinds))
    for ax, workload in zip(axes, kinds, strict=True):
        chosen = cells(results, workload=workload, mode=mode, profile=profile)
        _bars(ax, chosen, [num(c["throughput_per_s"]) for c in chosen])
        ax.set_title(f"{workload} {_params(chosen)}", fontsize=10)
        ax.set_ylabel("jobs/s")
    name = _save(fig, out, "report-throughput.png", f"Throughput ({mode}, profile {profile})")
    caption = f"Jobs per second in {mode} mode, profile {profile}; one panel per workload."
    return Chart(name, "Throughput per pool and workload", caption)


def scaling_chart(results: dict[str, Any], out: Path) -> Chart | None:
    profile, mode = main_profile(results), main_mode(results)
    kinds = workloads(results)
    fig, axes = _figure(len(kinds))
    for ax, workload in zip(axes, kinds, strict=True):
        chosen = cells(results, workload=workload, mode=mode, profile=profile)
        for pool in dict.fromkeys(c["pool"] for c in chosen):
            series = [c for c in chosen if c["pool"] == pool]
            levels = [c["concurrency"] for c in series]
            rates = [num(c["throughput_per_s"]) for c in series]
            ax.plot(levels, rates, marker="o", label=pool, color=POOL_COLORS.get(pool))
        ax.set_xscale("log")
        ax.set_xlabel("concurrency (-c)")
        ax.set_ylabel("jobs/s")
        ax.set_title(workload, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    name = _save(fig, out, "report-scaling.png", f"Throughput against concurrency ({mode})")
    return Chart(
        name,
        "Throughput against concurrency",
        "Each point is one worker started at that concurrency.",
    )


def latency_chart(results: dict[str, Any], out: Path) -> Chart | None:
    profile = main_profile(results)
    mode = "live" if "live" in results["config"]["modes"] else main_mode(results)
    kinds = workloads(results)
    fig, axes = _figure(len(kinds))
    for ax, workload in zip(axes, kinds, strict=True):
        chosen = cells(results, workload=workload, mode=mode, profile=profile)
        width = 0.27
        positions = list(range(len(chosen)))
        for index, (quantile, shade) in enumerate((("p50", 1.0), ("p95", 0.65), ("p99", 0.35))):
            values = [num(c["latency_ms"].get(quantile)) for c in chosen]
            ax.bar(
                [p + (index - 1) * width for p in positions],
                [v if math.isfinite(v) else 0 for v in values],
                width=width,
                color=[_color(c) for c in chosen],
                alpha=shade,
                label=quantile,
            )
        ax.set_xticks(
            positions, labels=[label(c) for c in chosen], rotation=30, ha="right", fontsize=8
        )
        ax.set_yscale("log")
        ax.set_ylabel("end-to-end latency, ms")
        ax.set_title(workload, fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    name = _save(fig, out, "report-latency.png", f"Latency p50 / p95 / p99 ({mode})")
    return Chart(
        name, "Latency percentiles", f"End to end (finished − sent) in {mode} mode; log scale."
    )


def memory_chart(results: dict[str, Any], out: Path) -> Chart | None:
    profile, mode = main_profile(results), main_mode(results)
    # memory at its highest: over every workload, the largest peak of each consumer
    by_consumer: dict[tuple[str, int], Cell] = {}
    for cell in cells(results, mode=mode, profile=profile):
        key = (cell["pool"], cell["concurrency"])
        current = by_consumer.get(key)
        if current is None or num(cell["rss_mb"]["peak"]) > num(current["rss_mb"]["peak"]):
            by_consumer[key] = cell
    chosen = list(by_consumer.values())
    if not chosen:
        return None
    fig, (left, middle, right) = _figure(3, width=4.8)
    width = 0.2
    positions = list(range(len(chosen)))
    width = 0.16
    series = (
        ("RSS idle", "rss_mb", "idle", 0.3),
        ("RSS peak", "rss_mb", "peak", 0.5),
        ("PSS peak", "pss_mb", "peak", 0.7),
        ("USS idle", "uss_mb", "idle", 0.85),
        ("USS peak", "uss_mb", "peak", 1.0),
    )
    for index, (name, figure, which, shade) in enumerate(series):
        values = [num((c.get(figure) or {}).get(which)) for c in chosen]
        left.bar(
            [p + (index - 2) * width for p in positions],
            [v if math.isfinite(v) else 0 for v in values],
            width=width,
            color=[_color(c) for c in chosen],
            alpha=shade,
            label=name,
        )
    left.set_xticks(
        positions, labels=[label(c) for c in chosen], rotation=30, ha="right", fontsize=8
    )
    left.set_ylabel("MB (whole process tree)")
    left.set_title("idle and peak", fontsize=10)
    left.legend(fontsize=7)
    left.grid(True, axis="y", alpha=0.3)
    _bars(
        middle,
        chosen,
        [num(c["uss_mb"]["peak"]) - num(c["uss_mb"]["idle"]) for c in chosen],
        "{:,.1f}",
    )
    middle.set_ylabel("MB")
    middle.set_title("USS growth under load (peak − idle)", fontsize=10)
    _bars(right, chosen, [num(c["uss_mb_per_slot"]) for c in chosen], "{:,.2f}")
    right.set_ylabel("MB per unit of concurrency")
    right.set_title("USS peak / concurrency", fontsize=10)
    name = _save(fig, out, "report-memory.png", f"Memory of each consumer (profile {profile})")
    return Chart(
        name,
        "Memory: idle, peak and per unit of concurrency",
        "Summed over each consumer's process tree. RSS counts a page shared by several "
        "processes once per process; USS counts only each process's own pages (what "
        "stopping the tree gives back); PSS splits shared pages between their sharers (the "
        "tree's real footprint).",
    )


def efficiency_chart(results: dict[str, Any], out: Path) -> Chart | None:
    profile, mode = main_profile(results), main_mode(results)
    kinds = workloads(results)
    fig, axes = _figure(len(kinds))
    for ax, workload in zip(axes, kinds, strict=True):
        chosen = cells(results, workload=workload, mode=mode, profile=profile)
        _bars(ax, chosen, [num(c["efficiency"]) * 100 for c in chosen], "{:.0f}%")
        ax.axhline(100, color="black", linewidth=0.8, linestyle="--")
        ax.set_ylabel("% of ceiling")
        ax.set_title(workload, fontsize=10)
    name = _save(
        fig, out, "report-efficiency.png", f"Throughput as a share of the ceiling ({mode})"
    )
    caption = (
        "Ceiling: cores × solo rate for CPU-bound work, concurrency / latency for I/O "
        "(or the CPU bound when lower); the tables say which bound held."
    )
    return Chart(name, "Efficiency against the ceiling", caption)


def profiles_chart(results: dict[str, Any], out: Path) -> Chart | None:
    profiles = list(results["config"]["profiles"])
    if len(profiles) < 2:
        return None
    mode = main_mode(results)
    kinds = workloads(results)
    fig, axes = _figure(len(kinds))
    for ax, workload in zip(axes, kinds, strict=True):
        base = best_per_pool(cells(results, workload=workload, mode=mode, profile=profiles[0]))
        width = 0.8 / len(profiles)
        positions = list(range(len(base)))
        for index, profile in enumerate(profiles):
            values = []
            for cell in base:
                match = cells(
                    results, workload=workload, mode=mode, profile=profile, pool=cell["pool"]
                )
                same = [c for c in match if c["concurrency"] == cell["concurrency"]]
                values.append(num(same[0]["throughput_per_s"]) if same else math.nan)
            ax.bar(
                [p + index * width for p in positions],
                [v if math.isfinite(v) else 0 for v in values],
                width=width,
                label=profile,
                alpha=0.5 + 0.5 * index / max(len(profiles) - 1, 1),
                color=[_color(c) for c in base],
            )
        centres = [p + width * (len(profiles) - 1) / 2 for p in positions]
        labels = [label(c) for c in base]
        ax.set_xticks(centres, labels=labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("jobs/s")
        ax.set_title(workload, fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(True, axis="y", alpha=0.3)
    name = _save(
        fig, out, "report-profiles.png", f"What tuning buys ({mode}): " + " vs ".join(profiles)
    )
    return Chart(
        name,
        "Settings profiles side by side",
        "Lighter bars: " + profiles[0] + "; darker: " + profiles[-1] + ".",
    )


def _params(chosen: Sequence[Cell]) -> str:
    if not chosen or not chosen[0]["params"]:
        return ""
    return "(" + ", ".join(f"{k}={v}" for k, v in chosen[0]["params"].items()) + ")"


def draw_charts(results: dict[str, Any], out: Path) -> list[Chart]:
    drawn = []
    for draw in (
        throughput_chart,
        scaling_chart,
        latency_chart,
        memory_chart,
        efficiency_chart,
        profiles_chart,
    ):
        chart = draw(results, out)
        if chart is not None:
            drawn.append(chart)
    return drawn
