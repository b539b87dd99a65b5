"""The report's PNG charts, drawn with the shared helpers of :mod:`poollab.measure.charts`."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from poollab.measure import charts
from poollab.measure.bench.report.select import (
    best_per_pool,
    cells,
    main_mode,
    main_profile,
    pool_color,
    workloads,
)
from poollab.measure.bench.results import BenchCell, BenchRun, Quantile

QUANTILES: tuple[Quantile, ...] = ("p50", "p95", "p99")
# workloads whose jobs have CPU of their own worth splitting per process
SPLIT_WORKLOADS = frozenset({"cpu", "mixed"})
# the report's charts are small multiples: narrower panels, a lower resolution than a demo's
PANEL_WIDTH, PANEL_HEIGHT, DPI = 4.6, 4.0, 90


@dataclass(frozen=True)
class Chart:
    file: str
    title: str
    caption: str


def _save(fig: Figure, out: Path, name: str, suptitle: str) -> str:
    charts.save(fig, out / name, suptitle, dpi=DPI)
    return name


def _pool_bars(
    ax: Axes, chosen: Sequence[BenchCell], values: Sequence[float], fmt: str = "{:,.0f}"
) -> None:
    charts.bars(
        ax,
        [c.label for c in chosen],
        values,
        colors=[pool_color(c.pool) for c in chosen],
        label=fmt.format,
        rotation=30,
    )


def _per_workload(
    run: BenchRun, mode: str, profile: str, draw: Callable[[Axes, str, list[BenchCell]], None]
) -> Figure:
    """A panel per workload, each drawn from that workload's cells."""
    kinds = workloads(run)
    fig, axes = charts.new_figure(len(kinds), PANEL_WIDTH, PANEL_HEIGHT)
    for ax, workload in zip(axes, kinds, strict=True):
        draw(ax, workload, cells(run, workload=workload, mode=mode, profile=profile))
    return fig


def throughput_chart(run: BenchRun, out: Path) -> Chart | None:
    profile, mode = main_profile(run), main_mode(run)

    def draw(ax: Axes, workload: str, chosen: list[BenchCell]) -> None:
        _pool_bars(ax, chosen, [c.throughput_per_s for c in chosen])
        ax.set_title(f"{workload} {_params(chosen)}", fontsize=10)
        ax.set_ylabel("jobs/s")

    fig = _per_workload(run, mode, profile, draw)
    name = _save(fig, out, "report-throughput.png", f"Throughput ({mode}, profile {profile})")
    caption = f"Jobs per second in {mode} mode, profile {profile}; one panel per workload."
    return Chart(name, "Throughput per pool and workload", caption)


def scaling_chart(run: BenchRun, out: Path) -> Chart | None:
    profile, mode = main_profile(run), main_mode(run)

    def draw(ax: Axes, workload: str, chosen: list[BenchCell]) -> None:
        pools = list(dict.fromkeys(c.pool for c in chosen))
        charts.lines(
            ax,
            {pool: [c.concurrency for c in chosen if c.pool == pool] for pool in pools},
            {pool: [c.throughput_per_s for c in chosen if c.pool == pool] for pool in pools},
            title=workload,
            xlabel="concurrency (-c)",
            ylabel="jobs/s",
            colors=charts.POOL_COLORS,
            logx=True,
        )

    fig = _per_workload(run, mode, profile, draw)
    name = _save(fig, out, "report-scaling.png", f"Throughput against concurrency ({mode})")
    return Chart(
        name,
        "Throughput against concurrency",
        "Each point is one worker started at that concurrency.",
    )


def latency_chart(run: BenchRun, out: Path) -> Chart | None:
    profile = main_profile(run)
    mode = "live" if "live" in run.config.modes else main_mode(run)

    def draw(ax: Axes, workload: str, chosen: list[BenchCell]) -> None:
        charts.grouped_bars(
            ax,
            [c.label for c in chosen],
            {quantile: [_ms(c.latency_ms.get(quantile)) for c in chosen] for quantile in QUANTILES},
            title=workload,
            ylabel="end-to-end latency, ms",
            colors=[pool_color(c.pool) for c in chosen],
            shades=(1.0, 0.65, 0.35),
            log=True,
            rotation=30,
        )

    fig = _per_workload(run, mode, profile, draw)
    name = _save(fig, out, "report-latency.png", f"Latency p50 / p95 / p99 ({mode})")
    return Chart(
        name, "Latency percentiles", f"End to end (finished − sent) in {mode} mode; log scale."
    )


def _ms(value: float | None) -> float:
    return math.nan if value is None else value


def memory_chart(run: BenchRun, out: Path) -> Chart | None:
    profile, mode = main_profile(run), main_mode(run)
    # memory at its highest: over every workload, the largest peak of each consumer
    by_consumer: dict[tuple[str, int], BenchCell] = {}
    for cell in cells(run, mode=mode, profile=profile):
        key = (cell.pool, cell.concurrency)
        current = by_consumer.get(key)
        if current is None or cell.rss_mb.peak > current.rss_mb.peak:
            by_consumer[key] = cell
    chosen = list(by_consumer.values())
    if not chosen:
        return None
    fig, (left, middle, right) = charts.new_figure(3, 4.8, PANEL_HEIGHT)
    charts.grouped_bars(
        left,
        [c.label for c in chosen],
        {
            "RSS idle": [c.rss_mb.idle for c in chosen],
            "RSS peak": [c.rss_mb.peak for c in chosen],
            "PSS peak": [c.pss_mb.peak for c in chosen],
            "USS idle": [c.uss_mb.idle for c in chosen],
            "USS peak": [c.uss_mb.peak for c in chosen],
        },
        title="idle and peak",
        ylabel="MB (whole process tree)",
        colors=[pool_color(c.pool) for c in chosen],
        shades=(0.3, 0.5, 0.7, 0.85, 1.0),
        rotation=30,
    )
    _pool_bars(middle, chosen, [c.uss_mb.peak - c.uss_mb.idle for c in chosen], "{:,.1f}")
    middle.set_ylabel("MB")
    middle.set_title("USS growth under load (peak − idle)", fontsize=10)
    _pool_bars(right, chosen, [c.uss_mb_per_slot for c in chosen], "{:,.2f}")
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


def efficiency_chart(run: BenchRun, out: Path) -> Chart | None:
    profile, mode = main_profile(run), main_mode(run)

    def draw(ax: Axes, workload: str, chosen: list[BenchCell]) -> None:
        _pool_bars(ax, chosen, [c.efficiency * 100 for c in chosen], "{:.0f}%")
        ax.axhline(100, color="black", linewidth=0.8, linestyle="--")
        ax.set_ylabel("% of ceiling")
        ax.set_title(workload, fontsize=10)

    fig = _per_workload(run, mode, profile, draw)
    name = _save(
        fig, out, "report-efficiency.png", f"Throughput as a share of the ceiling ({mode})"
    )
    caption = (
        "Ceiling: the least of slots (c / (latency + body CPU)), cores (usable cores / "
        "body CPU, the body timed in a bare loop) and, live, the offered rate; the tables "
        "say which bound held."
    )
    return Chart(name, "Efficiency against the ceiling", caption)


def profiles_chart(run: BenchRun, out: Path) -> Chart | None:
    profiles = list(run.config.profiles)
    if len(profiles) < 2:
        return None
    mode = main_mode(run)

    def draw(ax: Axes, workload: str, chosen: list[BenchCell]) -> None:
        base = best_per_pool(chosen)
        series = {
            profile: [_rate_of(run, workload, mode, profile, cell) for cell in base]
            for profile in profiles
        }
        charts.grouped_bars(
            ax,
            [c.label for c in base],
            series,
            title=workload,
            ylabel="jobs/s",
            colors=[pool_color(c.pool) for c in base],
            shades=[0.5 + 0.5 * i / max(len(profiles) - 1, 1) for i in range(len(profiles))],
            rotation=30,
        )

    fig = _per_workload(run, mode, profiles[0], draw)
    name = _save(
        fig, out, "report-profiles.png", f"What tuning buys ({mode}): " + " vs ".join(profiles)
    )
    return Chart(
        name,
        "Settings profiles side by side",
        "Lighter bars: " + profiles[0] + "; darker: " + profiles[-1] + ".",
    )


def _rate_of(run: BenchRun, workload: str, mode: str, profile: str, like: BenchCell) -> float:
    """The throughput of the cell like ``like`` (same pool and concurrency) in a profile."""
    same = [
        c
        for c in cells(run, workload=workload, mode=mode, profile=profile, pool=like.pool)
        if c.concurrency == like.concurrency
    ]
    return same[0].throughput_per_s if same else math.nan


def cpu_split_chart(run: BenchRun, out: Path) -> Chart | None:
    """CPU per job of each consumer's main process and of its children, against the body's."""
    profile, mode = main_profile(run), main_mode(run)
    kinds = [w for w in workloads(run) if w in SPLIT_WORKLOADS]
    if not kinds:
        return None
    fig, axes = charts.new_figure(len(kinds), PANEL_WIDTH, PANEL_HEIGHT)
    for ax, workload in zip(axes, kinds, strict=True):
        chosen = cells(run, workload=workload, mode=mode, profile=profile)
        charts.grouped_bars(
            ax,
            [c.label for c in chosen],
            {
                "main process": [c.cpu_ms_per_job.main_ms for c in chosen],
                "children": [c.cpu_ms_per_job.children_ms for c in chosen],
            },
            title=workload,
            ylabel="CPU ms per job",
            colors=[pool_color(c.pool) for c in chosen],
            shades=(1.0, 0.45),
            rotation=30,
            stacked=True,
        )
        body = run.references.bodies.get(workload)
        if body is not None:
            ax.axhline(body.cpu_ms, color="black", linewidth=0.8, linestyle="--")
    name = _save(fig, out, "report-cpu-split.png", f"Where each job's CPU went ({mode})")
    return Chart(
        name,
        "CPU per job: the main process and its children",
        "Each consumer's main process (dark) and its children (light: prefork's, the asyncio "
        "consumer's CPU executor), CPU ms per completed job, read from /proc over each cell; "
        "the dashed line is the job body's own CPU in a bare loop. What stands above the line "
        "is the consumer's own path: for prefork, handing each job to a child and back.",
    )


def _params(chosen: Sequence[BenchCell]) -> str:
    if not chosen or not chosen[0].params:
        return ""
    return "(" + ", ".join(f"{k}={v}" for k, v in chosen[0].params.items()) + ")"


def draw_charts(run: BenchRun, out: Path) -> list[Chart]:
    drawn = []
    for draw in (
        throughput_chart,
        scaling_chart,
        latency_chart,
        memory_chart,
        efficiency_chart,
        cpu_split_chart,
        profiles_chart,
    ):
        chart = draw(run, out)
        if chart is not None:
            drawn.append(chart)
    return drawn
