"""GIL: CPU-bound pure Python in 1, 2, 4 threads and in 1, 2, 4 processes."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack

from poollab.demo import scaling
from poollab.demo.context import DemoContext
from poollab.demo.result import DemoResult, Verdict, verdict_from
from poollab.demo.workloads import noop, spin

NAME = "gil"
CLAIM = (
    "Threads give no speed-up on CPU-bound pure-Python code, because of the GIL (2 and 4 threads "
    "within 1.1x of 1 thread); processes do, up to the number of cores (as many processes as "
    "cores at least 0.7x that many times faster than 1: 1.4x on 2 cores)."
)
TALK = "a CPU-bound function N times in 1/2/4 threads: no faster; in 1/2/4 processes: faster"
# thread runs within this factor of one thread count as "no speed-up"
THREAD_TOLERANCE = 1.1
# "up to the number of cores": as many processes as usable cores must be at least this share of
# that many times faster than one process (1.4x on 2 cores, 2.8x on 4)
PROCESS_EFFICIENCY = scaling.PARALLEL_EFFICIENCY


def run(ctx: DemoContext) -> DemoResult:
    size = scaling.spin_size(ctx, 1.2)

    def build(stack: ExitStack) -> list[scaling.Scaling]:
        items = []
        for kind in ("threads", "processes"):
            for workers in scaling.WORKERS:
                pool = stack.enter_context(_pool(kind, workers))
                # start every worker before timing: the figures are the work, not the start-up
                list(pool.map(noop, range(workers * 2)))
                items.append(scaling.Scaling(kind, workers, _work(pool, size)))
        return items

    rows = scaling.measure_scaling(ctx, "gil: threads and processes", build, full_budget_s=35.0)
    best_thread = max(scaling.speedup(rows, "threads", k) for k in scaling.WORKERS[1:])
    cpu, usable = scaling.usable_workers()
    process_speedup = scaling.speedup(rows, "processes", usable)
    return scaling.scaling_result(
        ctx,
        (NAME, CLAIM, TALK),
        rows,
        _verdict(cpu, best_thread, process_speedup, usable),
        summary={
            "calls": scaling.CALLS,
            "iterations_per_call": size,
            "best_thread_speedup": round(best_thread, 2),
            f"process_speedup_{usable}": round(process_speedup, 2),
            "cpu_count": cpu,
        },
        notes=[
            f"{scaling.CALLS} calls of spin(n) split over the workers; pools started before timing",
            "each figure is the best of the repeats (the run least disturbed by other load)",
            "cores_used = CPU seconds of the process tree / wall seconds",
            f"held means: threads within {THREAD_TOLERANCE}x of 1 thread, and {usable} "
            f"processes at least {scaling.needed_speedup(usable):.1f}x faster than 1",
        ],
        chart_title="poollab demo gil: CPU-bound Python, workers 1/2/4",
    )


def _pool(kind: str, workers: int) -> Executor:
    if kind == "threads":
        return ThreadPoolExecutor(workers)
    return ProcessPoolExecutor(workers)


def _work(pool: Executor, size: int) -> Callable[[], object]:
    return lambda: list(pool.map(spin, [size] * scaling.CALLS))


def _verdict(
    cpu: int, best_thread: float, process_speedup: float, usable: int
) -> tuple[Verdict, str]:
    failures = []
    if best_thread > THREAD_TOLERANCE:
        failures.append(f"threads sped up {best_thread:.2f}x")
    if cpu < 2:
        failures.append("one core: processes cannot run in parallel here")
    elif process_speedup < scaling.needed_speedup(usable):
        failures.append(
            f"{usable} processes only {process_speedup:.2f}x faster than 1 "
            f"(< {scaling.needed_speedup(usable):.1f}x; other load on the machine takes the "
            "cores?)"
        )
    return verdict_from(
        failures,
        lambda: (
            f"best thread speed-up {best_thread:.2f}x (none); {usable} processes "
            f"{process_speedup:.2f}x faster than 1 on {cpu} cores"
        ),
    )
