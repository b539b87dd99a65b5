"""Free-threading: the GIL experiment's threads on a build where the GIL is off (3.13t+)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

from poollab.demo import scaling
from poollab.demo.context import DemoContext
from poollab.demo.result import DemoResult, skipped
from poollab.demo.runtime import free_threading_missing, this_python
from poollab.demo.workloads import noop, spin

NAME = "free-threading"
CLAIM = (
    "On a free-threaded build (PEP 703) threads run CPU-bound Python in parallel: as many threads "
    "as cores are at least 0.7x that many times faster than 1 (1.4x on 2 cores)."
)
TALK = "Python 3.13t can switch the GIL off; CPU-bound threads then scale with the cores"


def run(ctx: DemoContext) -> DemoResult:
    missing = free_threading_missing()
    if missing is not None:
        return skipped(NAME, CLAIM, TALK, missing)
    size = scaling.spin_size(ctx, 1.6)

    def build(stack: ExitStack) -> list[scaling.Scaling]:
        items = []
        for workers in scaling.WORKERS:
            pool = stack.enter_context(ThreadPoolExecutor(workers))
            list(pool.map(noop, range(workers * 2)))
            items.append(scaling.Scaling("threads", workers, _work(pool, size)))
        return items

    rows = scaling.measure_scaling(ctx, "free-threading: threads", build, full_budget_s=50.0)
    cpu, usable = scaling.usable_workers()
    gained = scaling.speedup(rows, "threads", usable)
    return scaling.scaling_result(
        ctx,
        (NAME, CLAIM, TALK),
        rows,
        scaling.parallel_verdict(cpu, gained, "threads"),
        summary={f"thread_speedup_{usable}": round(gained, 2), "python": this_python()},
        notes=[
            f"held means: {usable} threads at least {scaling.needed_speedup(usable):.1f}x "
            "faster than 1"
        ],
        chart_title="poollab demo free-threading: threads, GIL off",
    )


def _work(pool: ThreadPoolExecutor, size: int) -> Callable[[], object]:
    return lambda: list(pool.map(spin, [size] * scaling.CALLS))
