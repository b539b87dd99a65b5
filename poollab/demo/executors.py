"""Executors: tiny jobs through process pools, a thread pool and a plain loop, then a job-size
sweep that finds where processes start to win."""

from __future__ import annotations

import multiprocessing
import os
import random
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass

from matplotlib.axes import Axes

from poollab.demo.budget import Deadline, median, timed
from poollab.demo.context import DemoContext
from poollab.demo.result import Cell, DemoResult, Row, Section, Verdict, ratio, verdict_from
from poollab.demo.workloads import factorial, noop, spin
from poollab.measure import charts

NAME = "executors"
CLAIM = (
    "For tiny jobs a process pool is much slower than a thread pool (at least 5x; the talk's "
    "~100x only with spawn), and cpu_count() process workers slower still than 1 (by at least "
    "5%); a process pool wins (at least 10% faster than threads) only once each job is big "
    "enough."
)
TALK = (
    "factorials of 10 random numbers from 1 to 10: ProcessPoolExecutor with cpu_count() workers "
    "nearly 2x slower than with 1 worker; ThreadPoolExecutor ~100x faster than processes"
)
JOBS = 10
# the talk's machine had more cores than a small CI box; a row with 8 workers shows the trend
TALK_WORKERS = 8
SPAWN_LABEL = "processes (1 worker, spawn)"
# "much faster": the talk's 100x depends on the start method (see the spawn row), so the verdict
# asks for a clear margin rather than the talk's exact figure
MIN_THREAD_ADVANTAGE = 5.0
# "more workers slower still": cpu_count() workers must take at least this many times as long as
# 1 worker, so that a tie within noise does not count (the talk said "nearly 2x")
MORE_WORKERS_SLOWER = 1.05
# processes "win" a job size only when at least 10% faster than threads: a tie is not a win
WIN_MARGIN = 0.9
# The talk's own figures get a verdict of their own, apart from the rule's: "~100x" is read as
# at least half of it, "nearly 2x" as at least 1.7x. Neither decides the claim's verdict.
TALK_THREAD_ADVANTAGE = 50.0
TALK_MORE_WORKERS_SLOWER = 1.7


@dataclass(frozen=True)
class _Config:
    label: str
    workers: int | None
    call: Callable[[], object]


def run(ctx: DemoContext) -> DemoResult:
    cpu = os.cpu_count() or 1
    numbers = [random.randint(1, 10) for _ in range(JOBS)]
    tiny_rows = _tiny_jobs(ctx, numbers, cpu, Deadline(ctx.pick(2.5, 10.0)))
    sweep_rows = _sweep(ctx, cpu, Deadline(ctx.pick(4.5, 40.0)))

    # ratios compare each config's best run: like timeit's minimum, the run least disturbed by
    # other work, since a thread pool's 1 ms is easily swamped by one late wake-up
    by_label = {str(row["config"]): float(row["best_ms"] or 0.0) for row in tiny_rows}
    one = by_label[_process_label(1)]
    many = by_label[_process_label(cpu)]
    threads = by_label[_thread_label()]
    more_workers_slower = ratio(many, one)
    threads_faster = ratio(one, threads)
    cold = _crossover(sweep_rows, "processes_cold_ms")
    warm = _crossover(sweep_rows, "processes_warm_ms")

    summary: dict[str, Cell] = {
        "numbers": ", ".join(map(str, numbers)),
        f"processes_{cpu}_vs_1_worker": round(more_workers_slower, 2),
        "threads_faster_than_processes": round(threads_faster, 1),
        "loop_faster_than_threads": round(ratio(threads, by_label["loop"]), 1),
        "crossover_iterations_cold_pool": cold,
        "crossover_ms_per_job_cold_pool": _work_ms_at(sweep_rows, cold),
        "crossover_iterations_warm_pool": warm,
    }
    notes = [
        f"process pools use the '{multiprocessing.get_start_method()}' start method; tiny-job "
        "times include starting and shutting down the pool, as a one-off batch does",
        f"cpu_count() = {cpu}; the {TALK_WORKERS}-worker row stands in for a larger machine",
        "ratios in the summary and verdict compare best runs; medians are in the table",
        f"held means: {cpu} workers >= {MORE_WORKERS_SLOWER}x the time of 1 worker, threads >= "
        f"{MIN_THREAD_ADVANTAGE:.0f}x faster than a 1-worker process pool, and a cold process "
        "pool at least 10% faster than threads from some job size of the sweep on",
    ]
    if cpu == 1:
        notes.append("one core: cpu_count() workers is the same pool as 1 worker")
    spawn = by_label.get(SPAWN_LABEL)
    if spawn is not None:
        summary["threads_faster_than_spawned_processes"] = round(ratio(spawn, threads), 1)
    verdict, reason = _verdict(cpu, more_workers_slower, threads_faster, cold, sweep_rows)
    reason += "; " + talk_figures(cpu, more_workers_slower, threads_faster)
    if spawn is not None:
        reason += (
            f"; with spawn (the macOS/Windows default) threads are "
            f"{ratio(spawn, threads):.0f}x faster than 1 process"
        )
    return DemoResult(
        name=NAME,
        claim=CLAIM,
        talk=TALK,
        columns=["config", "workers", "median_ms", "best_ms", "vs_loop", "runs"],
        rows=tiny_rows,
        sections=[
            Section(
                title=f"job-size sweep: {JOBS} jobs of spin(n), {cpu} workers",
                columns=[
                    "iterations",
                    "work_ms_per_job",
                    "loop_ms",
                    "threads_ms",
                    "processes_cold_ms",
                    "processes_warm_ms",
                    "fastest",
                ],
                rows=sweep_rows,
            )
        ],
        verdict=verdict,
        reason=reason,
        summary=summary,
        notes=notes,
        chart=_chart(ctx, tiny_rows, sweep_rows, cold),
        quick=ctx.quick,
    )


def _tiny_jobs(ctx: DemoContext, numbers: list[int], cpu: int, deadline: Deadline) -> list[Row]:
    worker_counts = sorted({1, cpu, max(cpu, TALK_WORKERS)})
    configs = [
        _Config("loop", None, lambda: [factorial(n) for n in numbers]),
        # ThreadPoolExecutor's default worker count since Python 3.8
        _Config(
            _thread_label(), min(32, cpu + 4), lambda: _pool_map(ThreadPoolExecutor(), numbers)
        ),
        *(_Config(_process_label(k), k, _process_call(k, numbers)) for k in worker_counts),
    ]
    if multiprocessing.get_start_method() != "spawn":
        # spawn is the default on macOS and Windows: this row shows what the same code costs there
        configs.append(_Config(SPAWN_LABEL, 1, _process_call(1, numbers, "spawn")))
    repeats = ctx.pick(5, 20)
    times: dict[str, list[float]] = {config.label: [] for config in configs}
    with ctx.progress.task("executors: tiny jobs", total=repeats) as advance:
        # round-robin, so a burst of load on the machine hits every config alike
        for _ in range(repeats):
            for config in configs:
                times[config.label].append(timed(config.call))
            advance(1)
            if deadline.expired():
                break
    loop_ms = median(times["loop"]) * 1000
    rows: list[Row] = []
    for config in configs:
        median_ms = median(times[config.label]) * 1000
        rows.append(
            {
                "config": config.label,
                "workers": config.workers,
                "median_ms": median_ms,
                "best_ms": min(times[config.label]) * 1000,
                "vs_loop": round(ratio(median_ms, loop_ms), 1),
                "runs": len(times[config.label]),
            }
        )
    return rows


def _sweep(ctx: DemoContext, cpu: int, deadline: Deadline) -> list[Row]:
    sizes = ctx.pick(
        [100, 1_000, 10_000, 30_000, 100_000, 300_000, 1_000_000],
        [100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000, 3_000_000],
    )
    repeats = ctx.pick(2, 3)
    rows: list[Row] = []
    last_cost = last_work = 0.0
    with (
        ProcessPoolExecutor(cpu) as warm_pool,
        ctx.progress.task("executors: job-size sweep", total=len(sizes)) as advance,
    ):
        list(warm_pool.map(noop, range(cpu * 2)))  # every worker up before timing
        for index, size in enumerate(sizes):
            growth = size / sizes[index - 1] if index else 1.0
            # fixed costs (starting pools) stay, the work grows: the loop, the threads and the
            # processes each do it once per repeat, so about three times the loop's time
            predicted = last_cost + (growth - 1) * last_work * 3
            if rows and predicted > deadline.remaining():
                # the next size would overrun the budget: stop with what was measured
                break
            started = time.perf_counter()
            best = _measure_size([size] * JOBS, cpu, warm_pool, repeats, deadline)
            rows.append(
                {
                    "iterations": size,
                    "work_ms_per_job": best["loop_ms"] / JOBS,
                    **best,
                    "fastest": min(best, key=lambda key: best[key]).removesuffix("_ms"),
                }
            )
            advance(1)
            last_cost = time.perf_counter() - started
            last_work = best["loop_ms"] / 1000
            if deadline.expired() or (ctx.quick and _processes_won_twice(rows)):
                break
    return rows


def _measure_size(
    jobs: list[int], cpu: int, warm_pool: Executor, repeats: int, deadline: Deadline
) -> dict[str, float]:
    return {
        "loop_ms": _best_ms(lambda: [spin(n) for n in jobs], repeats, deadline),
        "threads_ms": _best_ms(
            lambda: _pool_map(ThreadPoolExecutor(cpu), jobs, spin), repeats, deadline
        ),
        "processes_cold_ms": _best_ms(
            lambda: _pool_map(ProcessPoolExecutor(cpu), jobs, spin), repeats, deadline
        ),
        "processes_warm_ms": _best_ms(lambda: list(warm_pool.map(spin, jobs)), repeats, deadline),
    }


def _best_ms(call: Callable[[], object], repeats: int, deadline: Deadline) -> float:
    # the minimum is the run least disturbed by other load: the cost intrinsic to the method;
    # a run that takes long already averages over noise, so it is not repeated
    times = [timed(call)]
    while len(times) < repeats and times[0] < 0.2 and not deadline.expired():
        times.append(timed(call))
    return min(times) * 1000


def _processes_won_twice(rows: list[Row]) -> bool:
    return len(rows) >= 2 and all(_cold_beats_threads(row) for row in rows[-2:])


def _cold_beats_threads(row: Row) -> bool:
    return float(row["processes_cold_ms"] or 0) < WIN_MARGIN * float(row["threads_ms"] or 0)


def _crossover(rows: list[Row], column: str) -> int | None:
    """The smallest job size from which processes beat threads, by a margin beyond noise, at
    every larger size measured."""
    found: int | None = None
    for row in reversed(rows):
        if float(row[column] or 0) < WIN_MARGIN * float(row["threads_ms"] or 0):
            found = int(row["iterations"] or 0)
        else:
            break
    return found


def _work_ms_at(rows: list[Row], size: int | None) -> float | None:
    for row in rows:
        if row["iterations"] == size:
            return round(float(row["work_ms_per_job"] or 0), 2)
    return None


def _verdict(
    cpu: int,
    more_workers_slower: float,
    threads_faster: float,
    crossover: int | None,
    sweep: list[Row],
) -> tuple[Verdict, str]:
    failures = []
    if cpu > 1 and more_workers_slower < MORE_WORKERS_SLOWER:
        failures.append(
            f"{cpu} process workers took {more_workers_slower:.2f}x the time of 1 "
            f"(< {MORE_WORKERS_SLOWER}x)"
        )
    if threads_faster < MIN_THREAD_ADVANTAGE:
        failures.append(
            f"threads only {threads_faster:.1f}x faster than processes "
            f"(< {MIN_THREAD_ADVANTAGE:.0f}x)"
        )
    if crossover is None:
        largest = sweep[-1]["iterations"] if sweep else 0
        failures.append(f"processes never overtook threads up to {largest:,} iterations per job")
    return verdict_from(
        failures,
        lambda: (
            f"{cpu} workers {more_workers_slower:.2f}x the time of 1 worker; threads "
            f"{threads_faster:.0f}x faster than processes; a cold process pool wins "
            f"from {crossover:,} iterations per job"
        ),
    )


def talk_figures(cpu: int, more_workers_slower: float, threads_faster: float) -> str:
    """The talk's own figures, each held or not on its own: the rule asks for less than they say."""
    hundred = "held" if threads_faster >= TALK_THREAD_ADVANTAGE else "did not hold"
    parts = [
        f"the talk's ~100x (>= {TALK_THREAD_ADVANTAGE:.0f}x) {hundred}: "
        f"threads {threads_faster:.1f}x faster than 1 process"
    ]
    if cpu > 1:
        nearly = "held" if more_workers_slower >= TALK_MORE_WORKERS_SLOWER else "did not hold"
        parts.append(
            f"the talk's nearly 2x (>= {TALK_MORE_WORKERS_SLOWER}x) {nearly}: "
            f"{cpu} workers {more_workers_slower:.2f}x the time of 1"
        )
    return "; ".join(parts)


def _chart(
    ctx: DemoContext, tiny: list[Row], sweep: list[Row], crossover: int | None
) -> str | None:
    def draw(axes: list[Axes]) -> None:
        left, right = axes
        charts.bars(
            left,
            [str(row["config"]) for row in tiny],
            [float(row["best_ms"] or 0) for row in tiny],
            title=f"{JOBS} factorials of 1..10 (best run)",
            ylabel="ms (log)",
            log=True,
        )
        series = {
            key.removesuffix("_ms"): [float(row[key] or 0) for row in sweep]
            for key in ("loop_ms", "threads_ms", "processes_cold_ms", "processes_warm_ms")
        }
        charts.lines(
            right,
            [float(row["iterations"] or 0) for row in sweep],
            series,
            title=f"{JOBS} jobs of spin(n): where processes win",
            xlabel="iterations per job (log)",
            ylabel="ms (log)",
            logx=True,
            logy=True,
        )
        if crossover is not None:
            right.axvline(crossover, color="grey", linestyle="--")

    return ctx.draw_chart(NAME, "poollab demo executors", draw, panels=2)


def _pool_map(
    executor: Executor,
    items: Iterable[int],
    fn: Callable[[int], int] = factorial,
) -> list[int]:
    with executor:
        return list(executor.map(fn, items))


def _process_call(
    workers: int, numbers: list[int], method: str | None = None
) -> Callable[[], object]:
    context = multiprocessing.get_context(method)
    return lambda: _pool_map(ProcessPoolExecutor(workers, mp_context=context), numbers)


def _process_label(workers: int) -> str:
    return f"processes ({workers} worker{'s' if workers > 1 else ''})"


def _thread_label() -> str:
    return "threads (default workers)"
