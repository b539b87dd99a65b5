"""Fixed work split over 1, 2, 4 workers: the speed-up measurement shared by the GIL,
free-threading and sub-interpreter experiments."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from poollab.demo import chart
from poollab.demo.background import own_cpu_seconds
from poollab.demo.budget import Deadline
from poollab.demo.context import DemoContext
from poollab.demo.result import Row, ratio
from poollab.measure.progress import Advance

WORKERS = (1, 2, 4)
CALLS = 16  # divisible by every worker count, so no worker idles at the end


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
    path = ctx.chart_path(name)
    if path is None:
        return None
    kinds = list(dict.fromkeys(str(r["kind"]) for r in rows))
    fig, (left, right) = chart.new_figure(2)
    for ax, column, subtitle, label in (
        (left, "speedup", "speed-up over 1 worker (higher is better)", "x"),
        (right, "cores_used", "cores kept busy", "cores"),
    ):
        chart.grouped_bars(
            ax,
            [str(k) for k in WORKERS],
            {kind: [float(r[column] or 0) for r in rows if r["kind"] == kind] for kind in kinds},
            title=subtitle,
            ylabel=label,
        )
        ax.set_xlabel("workers")
    left.axhline(1.0, color="grey", linestyle="--")
    return chart.save(fig, path, title)
