"""Fixed work split over 1, 2, 4 workers: the speed-up measurement shared by the GIL,
free-threading and sub-interpreter experiments."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

from matplotlib.axes import Axes

from poollab.demo.background import own_cpu_seconds
from poollab.demo.budget import Deadline
from poollab.demo.context import DemoContext
from poollab.demo.result import Cell, DemoResult, Row, Verdict, ratio
from poollab.demo.workloads import iterations_for, seconds_per_spin_iteration
from poollab.measure import charts
from poollab.measure.progress import Advance

WORKERS = (1, 2, 4)
CALLS = 16  # divisible by every worker count, so no worker idles at the end
SCALING_COLUMNS = ["kind", "workers", "seconds", "speedup", "cores_used"]
# "in parallel, up to the cores": N workers on N usable cores must be at least this share of N
# times faster than one (1.4x on 2 cores, 2.8x on 4)
PARALLEL_EFFICIENCY = 0.7


@dataclass
class Scaling:
    kind: str
    workers: int
    # does the whole fixed amount of work with this many workers, and returns when it is done
    work: Callable[[], object]
    seconds: float = float("inf")
    cores_used: float = 0.0

    def measure(self) -> None:
        cpu_before = own_cpu_seconds()
        start = time.perf_counter()
        self.work()
        wall = time.perf_counter() - start
        # keep the best run: the one least disturbed by other load on the machine
        if wall < self.seconds:
            self.seconds = wall
            self.cores_used = (own_cpu_seconds() - cpu_before) / wall


def measure_round_robin(
    items: list[Scaling], repeats: int, deadline: Deadline, advance: Advance
) -> None:
    # round-robin, so a burst of load on the machine hits every config alike
    for _ in range(max(1, repeats)):
        for item in items:
            item.measure()
        advance(1)
        if deadline.expired():
            break


def scaling_rows(items: list[Scaling]) -> list[Row]:
    one = {item.kind: item.seconds for item in items if item.workers == 1}
    return [
        {
            "kind": item.kind,
            "workers": item.workers,
            "seconds": item.seconds,
            "speedup": round(ratio(one[item.kind], item.seconds), 2),
            "cores_used": round(item.cores_used, 2),
        }
        for item in items
    ]


def speedup(rows: list[Row], kind: str, workers: int) -> float:
    for row in rows:
        if row["kind"] == kind and row["workers"] == workers:
            return float(row["speedup"] or 0)
    raise KeyError((kind, workers))


def scaling_chart(ctx: DemoContext, name: str, rows: list[Row], title: str) -> str | None:
    kinds = list(dict.fromkeys(str(r["kind"]) for r in rows))

    def draw(axes: list[Axes]) -> None:
        left, right = axes
        for ax, column, subtitle, label in (
            (left, "speedup", "speed-up over 1 worker (higher is better)", "x"),
            (right, "cores_used", "cores kept busy", "cores"),
        ):
            charts.grouped_bars(
                ax,
                [str(k) for k in WORKERS],
                {
                    kind: [float(r[column] or 0) for r in rows if r["kind"] == kind]
                    for kind in kinds
                },
                title=subtitle,
                ylabel=label,
            )
            ax.set_xlabel("workers")
        left.axhline(1.0, color="grey", linestyle="--")

    return ctx.draw_chart(name, title, draw, panels=2)


def spin_size(ctx: DemoContext, full_serial_s: float) -> int:
    """Iterations of spin() per call so that all the calls take about this long on one core."""
    return iterations_for(ctx.pick(0.25, full_serial_s) / CALLS, seconds_per_spin_iteration())


def measure_scaling(
    ctx: DemoContext,
    description: str,
    build: Callable[[ExitStack], list[Scaling]],
    full_budget_s: float,
) -> list[Row]:
    """Measure what ``build`` sets up (its pools closed after), round-robin, within a budget."""
    repeats = ctx.pick(2, 3)
    with ExitStack() as stack:
        items = build(stack)
        with ctx.progress.task(description, total=repeats) as advance:
            measure_round_robin(items, repeats, Deadline(ctx.pick(7.0, full_budget_s)), advance)
    return scaling_rows(items)


def needed_speedup(usable: int) -> float:
    """The speed-up that counts as running in parallel on ``usable`` cores."""
    return round(PARALLEL_EFFICIENCY * usable, 2)


def usable_workers() -> tuple[int, int]:
    """The machine's CPUs, and the most workers that can run in parallel on them."""
    cpu = os.cpu_count() or 1
    return cpu, min(cpu, max(WORKERS))


def parallel_verdict(cpu: int, gained: float, what: str) -> tuple[Verdict, str]:
    """Held when ``what`` ran at least ``needed_speedup`` times faster with every usable core."""
    usable = min(cpu, max(WORKERS))
    needed = needed_speedup(usable)
    if cpu < 2:
        return Verdict.NOT_HELD, f"one core: {what} cannot run in parallel here"
    if gained >= needed:
        return Verdict.HELD, f"{usable} {what} {gained:.2f}x faster than 1 (>= {needed:.1f}x)"
    return Verdict.NOT_HELD, f"{usable} {what} only {gained:.2f}x faster than 1 (< {needed:.1f}x)"


def scaling_result(
    ctx: DemoContext,
    about: tuple[str, str, str],
    rows: list[Row],
    verdict: tuple[Verdict, str],
    *,
    summary: dict[str, Cell],
    notes: list[str],
    chart_title: str,
) -> DemoResult:
    """The result of a scaling experiment: its rows, the verdict and the speed-up chart.

    ``about`` is the experiment's name, the claim it tests and what the talk said.
    """
    name, claim, talk = about
    return DemoResult(
        name=name,
        claim=claim,
        talk=talk,
        columns=SCALING_COLUMNS,
        rows=rows,
        verdict=verdict[0],
        reason=verdict[1],
        summary=summary,
        notes=notes,
        chart=scaling_chart(ctx, name, rows, chart_title),
        quick=ctx.quick,
    )
