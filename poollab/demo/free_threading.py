"""Free-threading: the GIL experiment's threads on a build where the GIL is off (3.13t+)."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

from poollab.demo.budget import Deadline
from poollab.demo.context import DemoContext
from poollab.demo.result import DemoResult, Verdict, skipped
from poollab.demo.runtime import free_threading_missing, this_python
from poollab.demo.scaling import (
    CALLS,
    WORKERS,
    Scaling,
    measure_round_robin,
    scaling_chart,
    scaling_rows,
    speedup,
)
from poollab.demo.workloads import iterations_for, noop, seconds_per_spin_iteration, spin

NAME = "free-threading"
CLAIM = (
    "On a free-threaded build (PEP 703) threads run CPU-bound Python in parallel: they speed up "
    "with the cores, where the GIL build gives none."
)
TALK = "Python 3.13t can switch the GIL off; CPU-bound threads then scale with the cores"
SPEEDUP = 1.4


def run(ctx: DemoContext) -> DemoResult:
    missing = free_threading_missing()
    if missing is not None:
        return skipped(NAME, CLAIM, TALK, missing)
    cpu = os.cpu_count() or 1
    size = iterations_for(ctx.pick(0.25, 1.6) / CALLS, seconds_per_spin_iteration())
    repeats = ctx.pick(2, 3)
    with ExitStack() as stack:
        items = []
        for workers in WORKERS:
            pool = stack.enter_context(ThreadPoolExecutor(workers))
            list(pool.map(noop, range(workers * 2)))
            items.append(Scaling("threads", workers, _work(pool, size)))
        with ctx.progress.task("free-threading: threads", total=repeats) as advance:
            measure_round_robin(items, repeats, Deadline(ctx.pick(7.0, 50.0)), advance)
    rows = scaling_rows(items)
    usable = min(cpu, max(WORKERS))
    gained = speedup(rows, "threads", usable)
    if cpu < 2:
        verdict, reason = Verdict.NOT_HELD, "one core: threads cannot run in parallel here"
    elif gained >= SPEEDUP:
        verdict, reason = Verdict.HELD, f"{usable} threads {gained:.2f}x faster than 1"
    else:
        verdict, reason = Verdict.NOT_HELD, f"{usable} threads only {gained:.2f}x faster than 1"
    return DemoResult(
        name=NAME,
        claim=CLAIM,
        talk=TALK,
        columns=["kind", "workers", "seconds", "speedup", "cores_used"],
        rows=rows,
        verdict=verdict,
        reason=reason,
        summary={f"thread_speedup_{usable}": round(gained, 2), "python": this_python()},
        notes=[f"held means: {usable} threads at least {SPEEDUP}x faster than 1"],
        chart=scaling_chart(ctx, NAME, rows, "poollab demo free-threading: threads, GIL off"),
        quick=ctx.quick,
    )


def _work(pool: ThreadPoolExecutor, size: int) -> Callable[[], object]:
    return lambda: list(pool.map(spin, [size] * CALLS))
