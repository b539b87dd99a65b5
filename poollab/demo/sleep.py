"""Sleep: ``time.sleep`` releases the GIL, so sleeping threads overlap (the long and short
sleepers of the talk)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from matplotlib.axes import Axes

from poollab.demo.context import DemoContext
from poollab.demo.result import DemoResult, Row, Verdict, ratio
from poollab.measure import charts

NAME = "sleep"
CLAIM = (
    "time.sleep releases the GIL: sleeping threads overlap, so the run takes as long as the "
    "longest sleeper (within 10%), and short sleepers finish first whatever order they started "
    "in."
)
TALK = (
    "one long and several short sleepers in threads: the short ones finish first, total = longest"
)
# "as long as the longest sleeper": the threaded run may take at most this many times the
# longest sleep (thread start-up and late wake-ups take the rest)
LONGEST_TOLERANCE = 1.1


@dataclass
class _Sleeper:
    name: str
    seconds: float
    started: float = float("nan")
    finished: float = float("nan")


def run(ctx: DemoContext) -> DemoResult:
    long_s = ctx.pick(0.4, 2.0)
    short_s = ctx.pick(0.1, 0.4)
    shorts = ctx.pick(3, 5)
    crowd = ctx.pick(50, 200)
    crowd_s = ctx.pick(0.1, 0.5)
    sleepers = [_Sleeper("long", long_s)]
    sleepers += [_Sleeper(f"short-{i + 1}", short_s) for i in range(shorts)]
    planned = sum(s.seconds for s in sleepers)

    with ctx.progress.task("sleep: sequential, threaded, crowd", total=3) as advance:
        sequential = _sequential(sleepers)
        advance(1)
        threaded = _threaded(sleepers, timeout=planned + 5)
        advance(1)
        crowd_wall = _threaded(
            [_Sleeper(f"crowd-{i}", crowd_s) for i in range(crowd)], timeout=crowd * crowd_s + 5
        )
        advance(1)

    long_end = sleepers[0].finished
    shorts_first = all(s.finished < long_end for s in sleepers[1:])
    overlap = ratio(sequential, threaded)
    rows: list[Row] = [
        {
            "sleeper": s.name,
            "sleep_s": s.seconds,
            "started_s": round(s.started, 4),
            "finished_s": round(s.finished, 4),
        }
        for s in sleepers
    ]
    verdict, reason = _verdict(sequential, threaded, shorts_first, long_s)
    return DemoResult(
        name=NAME,
        claim=CLAIM,
        talk=TALK,
        columns=["sleeper", "sleep_s", "started_s", "finished_s"],
        rows=rows,
        verdict=verdict,
        reason=reason,
        summary={
            "sequential_s": round(sequential, 3),
            "threaded_s": round(threaded, 3),
            "overlap_x": round(overlap, 2),
            "short_sleepers_finished_first": shorts_first,
            f"{crowd}_threads_sleeping_{crowd_s}s_wall_s": round(crowd_wall, 3),
        },
        notes=[
            "started_s/finished_s: seconds since the threaded run began; the long sleeper "
            "starts first",
            f"held means: threaded run within {LONGEST_TOLERANCE}x of the longest sleeper "
            f"({long_s:.2f} s), and every short sleeper done before the long one",
        ],
        chart=_chart(ctx, sleepers, sequential, threaded),
        quick=ctx.quick,
    )


def _sequential(sleepers: list[_Sleeper]) -> float:
    start = time.perf_counter()
    for sleeper in sleepers:
        time.sleep(sleeper.seconds)
    return time.perf_counter() - start


def _threaded(sleepers: list[_Sleeper], timeout: float) -> float:
    origin = time.perf_counter()

    def sleep(sleeper: _Sleeper) -> None:
        sleeper.started = time.perf_counter() - origin
        time.sleep(sleeper.seconds)
        sleeper.finished = time.perf_counter() - origin

    threads = [threading.Thread(target=sleep, args=(s,), daemon=True) for s in sleepers]
    for thread in threads:
        thread.start()
    give_up = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, give_up - time.monotonic()))
    return time.perf_counter() - origin


def _verdict(
    sequential: float, threaded: float, shorts_first: bool, long_s: float
) -> tuple[Verdict, str]:
    overlapped = threaded <= LONGEST_TOLERANCE * long_s
    if overlapped and shorts_first:
        return Verdict.HELD, (
            f"threads took {threaded:.2f} s against {sequential:.2f} s in sequence "
            f"(longest sleeper {long_s:.2f} s); short sleepers finished first"
        )
    failures = []
    if not overlapped:
        failures.append(
            f"threads took {threaded:.2f} s, more than {LONGEST_TOLERANCE}x the longest sleeper "
            f"({long_s:.2f} s; {sequential:.2f} s in sequence)"
        )
    if not shorts_first:
        failures.append("a short sleeper finished after the long one")
    return Verdict.NOT_HELD, "; ".join(failures)


def _chart(
    ctx: DemoContext, sleepers: list[_Sleeper], sequential: float, threaded: float
) -> str | None:
    def draw(axes: list[Axes]) -> None:
        left, right = axes
        charts.timeline(
            left,
            [(s.name, s.started, s.finished) for s in sleepers],
            title="sleepers in threads: when each ran",
        )
        charts.bars(
            right,
            ["one after another", "in threads"],
            [sequential, threaded],
            title="wall time",
            ylabel="seconds",
        )

    return ctx.draw_chart(
        NAME, "poollab demo sleep: time.sleep in threads overlaps", draw, panels=2
    )
