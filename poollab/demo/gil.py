"""GIL: CPU-bound pure Python in 1, 2, 4 threads and in 1, 2, 4 processes."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack

from poollab.demo.budget import Deadline
from poollab.demo.context import DemoContext
from poollab.demo.result import DemoResult, Verdict
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

NAME = "gil"
CLAIM = (
    "Threads give no speed-up on CPU-bound pure-Python code, because of the GIL; processes do, "
    "up to the number of cores."
)
TALK = "a CPU-bound function N times in 1/2/4 threads: no faster; in 1/2/4 processes: faster"
# thread runs within this factor of one thread count as "no speed-up"
THREAD_TOLERANCE = 1.25
# processes must beat one process by this much on >= 2 cores to count as a speed-up
PROCESS_SPEEDUP = 1.4


def run(ctx: DemoContext) -> DemoResult:
    cpu = os.cpu_count() or 1
    serial_seconds = ctx.pick(0.25, 1.2)
    size = iterations_for(serial_seconds / CALLS, seconds_per_spin_iteration())
    repeats = ctx.pick(2, 3)
    with ExitStack() as stack:
        items = []
        for kind in ("threads", "processes"):
            for workers in WORKERS:
                pool = stack.enter_context(_pool(kind, workers))
                # start every worker before timing: the figures are the work, not the start-up
                list(pool.map(noop, range(workers * 2)))
                items.append(Scaling(kind, workers, _work(pool, size)))
        with ctx.progress.task("gil: threads and processes", total=repeats) as advance:
            measure_round_robin(items, repeats, Deadline(ctx.pick(7.0, 35.0)), advance)
    rows = scaling_rows(items)
    best_thread = max(speedup(rows, "threads", k) for k in WORKERS[1:])
    usable = min(cpu, max(WORKERS))
    process_speedup = speedup(rows, "processes", usable)
    verdict, reason = _verdict(cpu, best_thread, process_speedup, usable)
    return DemoResult(
        name=NAME,
        claim=CLAIM,
        talk=TALK,
        columns=["kind", "workers", "seconds", "speedup", "cores_used"],
        rows=rows,
        verdict=verdict,
        reason=reason,
        summary={
            "calls": CALLS,
            "iterations_per_call": size,
            "best_thread_speedup": round(best_thread, 2),
            f"process_speedup_{usable}": round(process_speedup, 2),
            "cpu_count": cpu,
        },
        notes=[
            f"{CALLS} calls of spin(n) split over the workers; pools started before timing",
            "each figure is the best of the repeats (the run least disturbed by other load)",
            "cores_used = CPU seconds of the process tree / wall seconds",
            f"held means: threads within {THREAD_TOLERANCE}x of 1 thread, and {usable} "
            f"processes at least {PROCESS_SPEEDUP}x faster than 1",
        ],
        chart=scaling_chart(ctx, NAME, rows, "poollab demo gil: CPU-bound Python, workers 1/2/4"),
        quick=ctx.quick,
    )


def _pool(kind: str, workers: int) -> Executor:
    if kind == "threads":
        return ThreadPoolExecutor(workers)
    return ProcessPoolExecutor(workers)


def _work(pool: Executor, size: int) -> Callable[[], object]:
    return lambda: list(pool.map(spin, [size] * CALLS))


def _verdict(
    cpu: int, best_thread: float, process_speedup: float, usable: int
) -> tuple[Verdict, str]:
    failures = []
    if best_thread > THREAD_TOLERANCE:
        failures.append(f"threads sped up {best_thread:.2f}x")
    if cpu < 2:
        failures.append("one core: processes cannot run in parallel here")
    elif process_speedup < PROCESS_SPEEDUP:
        failures.append(
            f"{usable} processes only {process_speedup:.2f}x faster than 1 "
            "(other load on the machine takes the cores?)"
        )
    if failures:
        return Verdict.NOT_HELD, "; ".join(failures)
    return Verdict.HELD, (
        f"best thread speed-up {best_thread:.2f}x (none); {usable} processes "
        f"{process_speedup:.2f}x faster than 1 on {cpu} cores"
    )
