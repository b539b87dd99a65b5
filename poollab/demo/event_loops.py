"""Event loops: the same loopback echo and HTTP workloads on asyncio's default loop and uvloop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import uvloop
from matplotlib.axes import Axes

from poollab.demo import loop_workloads
from poollab.demo.budget import Deadline
from poollab.demo.context import DemoContext
from poollab.demo.result import Cell, DemoResult, Row, Verdict, ratio
from poollab.measure import charts

NAME = "event-loops"
CLAIM = (
    "uvloop runs the same asyncio network code faster than the default event loop: at least "
    "1.1x its rate on every workload (echo over protocols, echo over streams, HTTP via aiohttp)."
)
TALK = "uvloop, a drop-in libuv-based event loop, makes asyncio network code markedly faster"
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}
# uvloop must beat the default loop by this much on every workload to count as faster: best
# runs of the same workload move by several percent from run to run, so a ratio near 1 is a tie
FASTER = 1.1


@dataclass(frozen=True)
class _Workload:
    name: str
    run: Callable[[int, int, float], Coroutine[Any, Any, int]]
    clients: int
    per_client: int


def run(ctx: DemoContext) -> DemoResult:
    workloads = [
        _Workload(
            "echo-protocol", loop_workloads.echo_protocol, ctx.pick(20, 50), ctx.pick(500, 2000)
        ),
        _Workload(
            "echo-streams", loop_workloads.echo_streams, ctx.pick(20, 50), ctx.pick(500, 2000)
        ),
        _Workload("http", loop_workloads.http, ctx.pick(10, 20), ctx.pick(150, 400)),
    ]
    repeats = ctx.pick(2, 3)
    per_run = ctx.pick(1.5, 3.0)
    deadline = Deadline(ctx.pick(7.0, 45.0))
    best: dict[tuple[str, str], tuple[int, float]] = {}
    schedule = [
        (workload, loop_name)
        for repeat in range(repeats)
        for workload in workloads
        # alternate which loop goes first, so warm-up and drift favour neither
        for loop_name in (list(LOOPS) if repeat % 2 == 0 else list(reversed(LOOPS)))
    ]
    with ctx.progress.task("event-loops: echo and http", total=len(schedule)) as advance:
        for workload, loop_name in schedule:
            done, seconds = _measure(workload, LOOPS[loop_name], per_run)
            key = (workload.name, loop_name)
            if key not in best or done / seconds > best[key][0] / best[key][1]:
                best[key] = (done, seconds)
            advance(1)
            # past the deadline, stop as soon as every pair has been measured once
            if deadline.expired() and len(best) == len(workloads) * len(LOOPS):
                break
    rows = _rows(workloads, best)
    speedups = {
        str(r["workload"]): float(r["uvloop_speedup"] or 0) for r in rows if r["loop"] == "uvloop"
    }
    verdict, reason = _verdict(speedups)
    summary: dict[str, Cell] = {f"{name}_uvloop_speedup": value for name, value in speedups.items()}
    for row in rows:
        summary[f"{row['workload']}_{row['loop']}_per_s"] = row["per_second"]
    return DemoResult(
        name=NAME,
        claim=CLAIM,
        talk=TALK,
        columns=[
            "workload",
            "loop",
            "clients",
            "round_trips",
            "seconds",
            "per_second",
            "uvloop_speedup",
        ],
        rows=rows,
        verdict=verdict,
        reason=reason,
        summary=summary,
        notes=[
            f"loopback only ({loop_workloads.__name__}: 127.0.0.1, kernel-picked ports); "
            "client and server share the loop under test",
            "echo: 64-byte messages, one in flight per client, over asyncio.Protocol callbacks "
            "or over asyncio streams; http: aiohttp server and client, GET returning 5 bytes",
            "each figure is the best of the repeats; runs stop at their count or time limit",
            f"held means: uvloop at least {FASTER}x the default loop's rate on every workload",
        ],
        chart=_chart(ctx, rows),
        quick=ctx.quick,
    )


def _measure(
    workload: _Workload, loop_factory: Callable[[], asyncio.AbstractEventLoop], seconds: float
) -> tuple[int, float]:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        start = time.perf_counter()
        # the workloads stop themselves at `seconds`; this bound is for one that hangs
        bounded = asyncio.wait_for(
            workload.run(workload.clients, workload.per_client, seconds), seconds + 30
        )
        done = runner.run(bounded)
        return done, time.perf_counter() - start


def _rows(workloads: list[_Workload], best: dict[tuple[str, str], tuple[int, float]]) -> list[Row]:
    rows: list[Row] = []
    for workload in workloads:
        base_done, base_seconds = best[(workload.name, "asyncio")]
        base_rate = base_done / base_seconds
        for loop_name in LOOPS:
            done, seconds = best[(workload.name, loop_name)]
            rate = done / seconds
            rows.append(
                {
                    "workload": workload.name,
                    "loop": loop_name,
                    "clients": workload.clients,
                    "round_trips": done,
                    "seconds": round(seconds, 3),
                    "per_second": round(rate),
                    "uvloop_speedup": round(ratio(rate, base_rate), 2),
                }
            )
    return rows


def _verdict(speedups: dict[str, float]) -> tuple[Verdict, str]:
    figures = ", ".join(f"{name} {value:.2f}x" for name, value in speedups.items())
    if not speedups:
        return Verdict.NOT_HELD, "no workload was measured"
    not_faster = [name for name, value in speedups.items() if value < FASTER]
    if len(not_faster) == len(speedups):
        return Verdict.NOT_HELD, f"uvloop not {FASTER}x faster on any workload: {figures}"
    if not_faster:
        return Verdict.NOT_HELD, (
            f"uvloop not {FASTER}x faster on {', '.join(not_faster)} ({figures}): there the "
            "Python code above the loop (streams, aiohttp) outweighs the loop itself"
        )
    return Verdict.HELD, f"uvloop at least {FASTER}x faster everywhere: {figures}"


def _chart(ctx: DemoContext, rows: list[Row]) -> str | None:
    def draw(axes: list[Axes]) -> None:
        (ax,) = axes
        workloads = list(dict.fromkeys(str(r["workload"]) for r in rows))
        charts.grouped_bars(
            ax,
            workloads,
            {
                loop: [
                    float(r["per_second"] or 0)
                    for w in workloads
                    for r in rows
                    if r["workload"] == w and r["loop"] == loop
                ]
                for loop in LOOPS
            },
            title="round trips per second on loopback (higher is better)",
            ylabel="per second",
        )

    return ctx.draw_chart(
        NAME, "poollab demo event-loops: asyncio vs uvloop", draw, width_per_panel=7
    )
