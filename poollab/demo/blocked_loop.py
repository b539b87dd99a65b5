"""A blocked loop: any blocking call inside a coroutine stops the whole event loop.

A heartbeat coroutine wakes every 5 ms and records how late it woke, while worker
coroutines make the same blocking call (``time.sleep``, a blocking socket read from a slow
loopback server, a pure-Python CPU burst) inline, through ``asyncio.to_thread`` or through a
process pool; ``asyncio.sleep`` is the reference that never blocks. Then the lab's own asyncio
consumer runs CPU jobs with each of its ``--cpu-executor`` choices and reports the lag it
measured itself (:mod:`poollab.demo.consumer_lag`).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from matplotlib.axes import Axes

from poollab.demo import consumer_lag
from poollab.demo.budget import timed
from poollab.demo.context import DemoContext
from poollab.demo.heartbeat import TICK_S, Heartbeat
from poollab.demo.result import Cell, DemoResult, Row, Section, Verdict, verdict_from
from poollab.demo.slow_clients import blocking_request
from poollab.demo.slow_server import SlowEchoServer
from poollab.jobs import cpu_work
from poollab.measure import charts

NAME = "blocked-loop"
CLAIM = (
    "Any blocking call made inline stops the whole loop: the heartbeat's worst lag is at "
    "least the call's duration (time.sleep, a blocking socket read, a CPU burst). Through "
    "asyncio.to_thread (time.sleep, socket) or a process pool (CPU) the loop keeps beating: "
    "p99 lag under 20 ms. A CPU burst in a thread still takes the GIL: the loop's median lag "
    "grows with the switch interval (larger at 20 ms than at 5 ms). The lab's consumer sees "
    "the same in its own loop-lag metric: inline CPU jobs lag it by at least one job's run "
    "time, a process pool by less than half of one."
)
TALK = (
    "any blocking call stops the whole loop; threads are for running blocking operations "
    "inside async code (and processes for CPU)"
)
# "keeps beating": a loop that only awaits wakes within a millisecond or two; 20 ms leaves a
# busy machine's scheduling delays room and is still far below one 100 ms blocking call
OFFLOADED_P99_MS = 20.0
# the two GIL switch intervals of the CPU-in-a-thread rows: Python's default, and 4x that
SWITCH_INTERVALS_MS = (5.0, 20.0)
# the consumer: inline jobs lag its loop by a job's run time (this share of it, for timer
# resolution); a process pool by less than this share of one
INLINE_SHARE = 0.9
PROCESS_SHARE = 0.5
CASES = 9


@dataclass(frozen=True)
class _Case:
    block: str
    how: str
    call: Callable[[], Awaitable[object]]
    inline: bool = False
    switch_ms: float | None = None


def run(ctx: DemoContext) -> DemoResult:
    block_s = ctx.pick(0.1, 0.2)
    workers = ctx.pick(2, 4)
    calls = ctx.pick(2, 3)
    steps = _steps_for(block_s)
    default_switch_ms = round(sys.getswitchinterval() * 1000, 3)
    rows: list[Row] = []
    with (
        SlowEchoServer(block_s) as server,
        _process_pool(pool_size(workers)) as pool,
        ctx.progress.task(
            "blocked-loop: a heartbeat beside blocking calls, then the consumer",
            total=CASES + len(consumer_lag.EXECUTORS),
        ) as advance,
    ):
        cases = _cases(block_s, server.port, steps, pool)
        for case in cases:
            with _switch_interval(case.switch_ms):
                beat, wall = asyncio.run(_measure(case, workers, calls, block_s))
            rows.append(
                {
                    "block": case.block,
                    "how": case.how,
                    "switch_ms": case.switch_ms or default_switch_ms,
                    "calls": workers * calls,
                    "block_ms": round(block_s * 1000),
                    "wall_s": round(wall, 3),
                    "calls_per_s": round(workers * calls / wall, 1),
                    **beat.figures_ms(),
                    "beats": len(beat.lags_s),
                }
            )
            advance(1)
        consumer_rows = consumer_lag.measure(
            jobs=ctx.pick(4, 20), steps=steps, on_each=lambda: advance(1)
        )
    verdict, reason = _verdict(rows, consumer_rows, block_s)
    return DemoResult(
        name=NAME,
        claim=CLAIM,
        talk=TALK,
        columns=[
            "block",
            "how",
            "switch_ms",
            "calls",
            "block_ms",
            "wall_s",
            "calls_per_s",
            "lag_p50_ms",
            "lag_p99_ms",
            "lag_max_ms",
            "beats",
        ],
        rows=rows,
        verdict=verdict,
        reason=reason,
        summary=_summary(rows, consumer_rows),
        sections=[
            Section(
                "the asyncio consumer's own loop lag (poollab_event_loop_lag_seconds), cpu jobs",
                consumer_lag.COLUMNS,
                consumer_rows,
            )
        ],
        notes=[
            f"{workers} worker coroutines make {calls} calls each; a heartbeat coroutine "
            f"sleeps {TICK_S * 1000:.0f} ms again and again and records how late it woke",
            f"each blocking call lasts about {block_s * 1000:.0f} ms: time.sleep, a read from "
            f"a loopback server that answers after that long, or cpu_work({steps:,}) "
            "calibrated to it",
            f"process pool of {pool_size(workers)} (a core is left to the loop's own "
            "process), spawn start method, started and warmed before the heartbeat; a "
            "worker coroutine awaits asyncio.sleep(0) after each call",
            f"the consumer: `poollab consume --cpu-executor EXECUTOR -c 4` on an embedded "
            f"Redis, cpu jobs of n={steps:,}; lag_max_ms is the largest loop_lag_s in its "
            "samples (what the collector serves as poollab_event_loop_lag_seconds)",
            f"held means: every inline blocking row's lag_max at least the call "
            f"({block_s * 1000:.0f} ms) less one tick; asyncio.sleep, to_thread (time.sleep, "
            f"socket) and process-pool rows' lag_p99 under {OFFLOADED_P99_MS:.0f} ms; CPU in a "
            f"thread: lag_p50 larger at {SWITCH_INTERVALS_MS[1]:.0f} ms switch interval than "
            f"at {SWITCH_INTERVALS_MS[0]:.0f} ms; the consumer inline at least "
            f"{INLINE_SHARE:.0%} of a job's run time, with a process pool under "
            f"{PROCESS_SHARE:.0%} of one",
        ],
        chart=_chart(ctx, rows, consumer_rows),
        quick=ctx.quick,
    )


def _steps_for(seconds: float) -> int:
    """cpu_work steps that take about ``seconds`` here (the best of three timings)."""
    probe = 200_000
    best = min(timed(lambda: cpu_work(probe)) for _ in range(3))
    return max(10_000, int(probe * seconds / best))


def pool_size(workers: int) -> int:
    """Workers for the process pool: one core is left to the loop's own process, or the
    pool's processes would take its CPU and lag it as surely as the GIL does."""
    return max(1, min(workers, (os.cpu_count() or 1) - 1))


@contextmanager
def _process_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    # spawn: forking a process that runs the slow server's threads is unsafe
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        # start every worker now: start-up is not what the heartbeat should measure
        list(pool.map(cpu_work, [1] * workers * 2))
        yield pool
    finally:
        pool.shutdown(cancel_futures=True)


@contextmanager
def _switch_interval(ms: float | None) -> Iterator[None]:
    previous = sys.getswitchinterval()
    if ms is not None:
        sys.setswitchinterval(ms / 1000)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def _cases(block_s: float, port: int, steps: int, pool: ProcessPoolExecutor) -> list[_Case]:
    timeout = block_s + 10

    async def inline_sleep() -> None:
        time.sleep(block_s)

    async def inline_socket() -> None:
        blocking_request(port, timeout)

    async def inline_cpu() -> None:
        cpu_work(steps)

    async def in_process() -> None:
        await asyncio.get_running_loop().run_in_executor(pool, cpu_work, steps)

    def thread_cpu(switch_ms: float) -> _Case:
        call = _Case("cpu burst", "asyncio.to_thread", lambda: asyncio.to_thread(cpu_work, steps))
        return _Case(call.block, call.how, call.call, switch_ms=switch_ms)

    return [
        _Case("asyncio.sleep", "await", lambda: asyncio.sleep(block_s)),
        _Case("time.sleep", "inline", inline_sleep, inline=True),
        _Case("time.sleep", "asyncio.to_thread", lambda: asyncio.to_thread(time.sleep, block_s)),
        _Case("socket recv", "inline", inline_socket, inline=True),
        _Case(
            "socket recv",
            "asyncio.to_thread",
            lambda: asyncio.to_thread(blocking_request, port, timeout),
        ),
        _Case("cpu burst", "inline", inline_cpu, inline=True),
        *(thread_cpu(ms) for ms in SWITCH_INTERVALS_MS),
        _Case("cpu burst", "process pool", in_process),
    ]


async def _measure(
    case: _Case, workers: int, calls: int, block_s: float
) -> tuple[Heartbeat, float]:
    beat = Heartbeat()

    async def worker() -> None:
        for _ in range(calls):
            await case.call()
            # the workers take turns between calls; the heartbeat, waiting on its timer,
            # still gets none while workers are ready (the beats column)
            await asyncio.sleep(0)

    beating = asyncio.create_task(beat.run(asyncio.sleep))
    await asyncio.sleep(2 * beat.tick_s)  # beating before the first call
    start = time.perf_counter()
    # bounded: inline, the calls run one after another
    await asyncio.wait_for(
        asyncio.gather(*(worker() for _ in range(workers))), workers * calls * block_s * 5 + 30
    )
    wall = time.perf_counter() - start
    beat.stop()
    await beating
    return beat, wall


def _offloaded(row: Row) -> bool:
    return row["how"] in ("await", "process pool") or (
        row["how"] == "asyncio.to_thread" and row["block"] != "cpu burst"
    )


def _verdict(rows: list[Row], consumer_rows: list[Row], block_s: float) -> tuple[Verdict, str]:
    failures = []
    floor_ms = (block_s - TICK_S) * 1000
    for row in rows:
        label = f"{row['block']} {row['how']}"
        if row["how"] == "inline" and float(row["lag_max_ms"] or 0) < floor_ms:
            failures.append(f"{label}: max lag {row['lag_max_ms']} ms < {floor_ms:.0f} ms")
        if _offloaded(row) and float(row["lag_p99_ms"] or 0) >= OFFLOADED_P99_MS:
            failures.append(f"{label}: p99 lag {row['lag_p99_ms']} ms ≥ {OFFLOADED_P99_MS} ms")
    by_switch = _thread_cpu_p50(rows)
    low, high = (by_switch.get(ms, 0.0) for ms in SWITCH_INTERVALS_MS)
    if not high > low:
        failures.append(
            f"cpu in a thread: p50 lag {high} ms at {SWITCH_INTERVALS_MS[1]:.0f} ms switch "
            f"interval, not above {low} ms at {SWITCH_INTERVALS_MS[0]:.0f} ms"
        )
    failures += consumer_lag.failures(consumer_rows, INLINE_SHARE, PROCESS_SHARE)
    inline_max = min(float(r["lag_max_ms"] or 0) for r in rows if r["how"] == "inline")
    offloaded_p99 = max(float(r["lag_p99_ms"] or 0) for r in rows if _offloaded(r))
    return verdict_from(
        failures,
        lambda: (
            f"inline calls stopped the loop for at least {inline_max:.0f} ms (one call is "
            f"{block_s * 1000:.0f} ms; ready coroutines ran theirs back to back); "
            f"offloaded, p99 lag at most {offloaded_p99:.1f} ms; CPU in a thread: p50 lag "
            f"{low} ms at {SWITCH_INTERVALS_MS[0]:.0f} ms switch interval, {high} ms at "
            f"{SWITCH_INTERVALS_MS[1]:.0f} ms; " + consumer_lag.describe(consumer_rows)
        ),
    )


def _thread_cpu_p50(rows: list[Row]) -> dict[float, float]:
    return {
        float(r["switch_ms"] or 0): float(r["lag_p50_ms"] or 0)
        for r in rows
        if r["block"] == "cpu burst" and r["how"] == "asyncio.to_thread"
    }


def _summary(rows: list[Row], consumer_rows: list[Row]) -> dict[str, Cell]:
    summary: dict[str, Cell] = {}
    for row in rows:
        key = f"{row['block']} {row['how']}".replace(" ", "_").replace(".", "_")
        if row["block"] == "cpu burst" and row["how"] == "asyncio.to_thread":
            key += f"_switch_{row['switch_ms']:g}ms"
        summary[f"{key}_lag_max_ms"] = row["lag_max_ms"]
    for row in consumer_rows:
        summary[f"consumer_{row['cpu_executor']}_lag_max_ms"] = row["lag_max_ms"]
    return summary


def _label(row: Row) -> str:
    label = f"{row['block']}\n{row['how']}"
    if row["block"] == "cpu burst" and row["how"] == "asyncio.to_thread":
        label += f" ({row['switch_ms']:g} ms)"
    return label


def _chart(ctx: DemoContext, rows: list[Row], consumer_rows: list[Row]) -> str | None:
    def draw(axes: list[Axes]) -> None:
        left, right = axes
        charts.grouped_bars(
            left,
            [_label(r) for r in rows],
            {
                "median lag": [float(r["lag_p50_ms"] or 0) for r in rows],
                "max lag": [float(r["lag_max_ms"] or 0) for r in rows],
            },
            title="heartbeat lag beside blocking calls (ms, log)",
            ylabel="ms",
            log=True,
            rotation=60,
        )
        charts.bars(
            right,
            [f"--cpu-executor {r['cpu_executor']}" for r in consumer_rows],
            [float(r["lag_max_ms"] or 0) for r in consumer_rows],
            title="the consumer's own loop lag, worst sample (ms)",
            ylabel="ms",
        )

    return ctx.draw_chart(
        NAME, "poollab demo blocked-loop: what stops the event loop", draw, panels=2,
        width_per_panel=7,
    )  # fmt: skip
