"""Start methods: fork, spawn and forkserver, with and without a large parent heap.

Measures the time from ``Process.start()`` to the child's first message, and the child's
memory (RSS and USS, via psutil) before and after it reads every object of an inherited heap:
reading is enough to dirty the pages, because reference counts live in the objects.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import cast

import psutil
from matplotlib.axes import Axes

from poollab.demo import start_methods_child
from poollab.demo.budget import Deadline
from poollab.demo.context import DemoContext
from poollab.demo.result import Cell, DemoResult, Row, Verdict, ratio, verdict_from
from poollab.measure import charts

NAME = "start-methods"
CLAIM = (
    "fork starts a process fastest (at least 1.5x faster than spawn and forkserver) and shares "
    "the parent's memory copy-on-write (the child owns under 10% of the heap), but Python's "
    "reference counts turn merely reading inherited objects into writes that copy the pages "
    "(at least half the heap); spawn and forkserver inherit nothing."
)
TALK = (
    "processes cost start-up time and memory; fork shares memory until refcounts dirty the "
    "pages; spawn starts a fresh interpreter"
)
MB = 2**20
REPLY_TIMEOUT = 30.0
# "fastest": fork must start at least this many times faster than spawn and forkserver
FORK_FASTER = 1.5
# "shares": before reading, the forked child may own at most this share of the heap
SHARED_SHARE = 0.1
# "copies the pages": reading must grow the child's own memory by at least this share of the heap
COPIED_SHARE = 0.5


@dataclass(frozen=True)
class _Memory:
    inherited: bool
    rss_mb: float
    uss_mb: float
    rss_touched_mb: float
    uss_touched_mb: float
    touch_ms: float


@dataclass(frozen=True)
class _Measured:
    start_ms: list[float]
    memory: _Memory


_Context = (
    multiprocessing.context.DefaultContext
    | multiprocessing.context.SpawnContext
    | multiprocessing.context.ForkContext
    | multiprocessing.context.ForkServerContext
)


def run(ctx: DemoContext) -> DemoResult:
    methods = [m for m in ("fork", "forkserver", "spawn") if m in _available()]
    heap_items = ctx.pick(1_000_000, 3_000_000)
    starts = ctx.pick(2, 7)
    deadline = Deadline(ctx.pick(8.0, 50.0))
    rows: list[Row] = []
    with ctx.progress.task("start-methods: children", total=len(methods) * 2) as advance:
        for heap in (False, True):
            heap_mb = _set_heap(heap_items if heap else 0)
            try:
                for method in methods:
                    measured = _measure(method, starts, deadline)
                    rows.append(_row(method, heap_mb, measured))
                    advance(1)
            finally:
                _set_heap(0)
    verdict, reason = _verdict(rows)
    return DemoResult(
        name=NAME,
        claim=CLAIM,
        talk=TALK,
        columns=[
            "method",
            "parent_heap_mb",
            "inherited",
            "start_ms",
            "child_rss_mb",
            "child_uss_mb",
            "uss_after_read_mb",
            "read_ms",
        ],
        rows=rows,
        verdict=verdict,
        reason=reason,
        summary=_summary(rows),
        notes=[
            f"large heap: {heap_items:,} distinct str objects held in a list by the parent",
            "start_ms: median time from Process.start() to the child's first message",
            "USS: memory only this child holds; RSS counts pages shared with the parent too",
            "uss_after_read_mb: after the child iterated over the inherited heap once "
            "(reads only, no assignments)",
            "forkserver: its server process is started before timing, as a long-lived "
            "program would have it",
            f"held means: fork >= {FORK_FASTER}x faster to start than spawn and forkserver; "
            f"the forked child owns < {SHARED_SHARE:.0%} of the heap before reading it and "
            f">= {COPIED_SHARE:.0%} more after; spawn and forkserver inherit nothing",
            "spawn and forkserver children re-run the imports of the parent's __main__ module "
            "(CPython 3.11 does not preload it into the fork server), so their start time "
            "grows with what the main script imports",
        ],
        chart=_chart(ctx, rows),
        quick=ctx.quick,
    )


def _available() -> list[str]:
    return multiprocessing.get_all_start_methods()


def _set_heap(items: int) -> float:
    """Build (or drop) the parent's heap; returns its approximate size in MB."""
    if items == 0:
        start_methods_child.HEAP = None
        return 0.0
    before = psutil.Process().memory_info().rss
    start_methods_child.HEAP = [f"object number {i}" for i in range(items)]
    return (psutil.Process().memory_info().rss - before) / MB


def _measure(method: str, starts: int, deadline: Deadline) -> _Measured:
    context = _context(method)
    if method == "forkserver":
        _start_child(context, touch=False)  # starts the server; not part of the figure
    times: list[float] = []
    for attempt in range(max(1, starts)):
        last = attempt == starts - 1 or deadline.expired()
        elapsed, memory = _start_child(context, touch=last)
        times.append(elapsed * 1000)
        if memory is not None:
            return _Measured(times, memory)
    raise AssertionError("the last start always measures memory")


def _context(method: str) -> _Context:
    # one branch per literal, so the type checker knows each context has .Process
    if method == "fork":
        return multiprocessing.get_context("fork")
    if method == "forkserver":
        return multiprocessing.get_context("forkserver")
    if method == "spawn":
        return multiprocessing.get_context("spawn")
    return multiprocessing.get_context()


def _start_child(context: _Context, touch: bool) -> tuple[float, _Memory | None]:
    parent_end, child_end = context.Pipe()
    process = context.Process(target=start_methods_child.child, args=(child_end,), daemon=True)
    start = time.perf_counter()
    process.start()
    try:
        _, inherited = _receive(parent_end)
        elapsed = time.perf_counter() - start
        memory = None
        if touch:
            memory = _touch(parent_end, psutil.Process(process.pid), bool(inherited))
        parent_end.send("exit")
        process.join(REPLY_TIMEOUT)
        return elapsed, memory
    finally:
        if process.is_alive():
            process.kill()
            process.join(5)
        parent_end.close()
        child_end.close()


def _touch(conn: Connection, child: psutil.Process, inherited: bool) -> _Memory:
    """The child's memory before and after it reads every object of the inherited heap."""
    before = child.memory_full_info()
    conn.send("touch")
    _, _, touch_s = _receive(conn)
    after = child.memory_full_info()
    return _Memory(
        inherited=inherited,
        rss_mb=before.rss / MB,
        uss_mb=before.uss / MB,
        rss_touched_mb=after.rss / MB,
        uss_touched_mb=after.uss / MB,
        touch_ms=cast(float, touch_s) * 1000,
    )


def _receive(conn: Connection) -> tuple[object, ...]:
    if not conn.poll(REPLY_TIMEOUT):
        raise TimeoutError(f"child did not answer in {REPLY_TIMEOUT:.0f} s")
    message: tuple[object, ...] = conn.recv()
    return message


def _row(method: str, heap_mb: float, measured: _Measured) -> Row:
    memory = measured.memory
    return {
        "method": method,
        "parent_heap_mb": round(heap_mb, 1),
        "inherited": memory.inherited,
        "start_ms": round(statistics.median(measured.start_ms), 2),
        "child_rss_mb": round(memory.rss_mb, 1),
        "child_uss_mb": round(memory.uss_mb, 1),
        "uss_after_read_mb": round(memory.uss_touched_mb, 1),
        "read_ms": round(memory.touch_ms, 1),
    }


def _find(rows: list[Row], method: str, heap: bool) -> Row | None:
    for row in rows:
        if row["method"] == method and (float(row["parent_heap_mb"] or 0) > 0) == heap:
            return row
    return None


def _summary(rows: list[Row]) -> dict[str, Cell]:
    summary: dict[str, Cell] = {}
    for method in ("fork", "forkserver", "spawn"):
        row = _find(rows, method, heap=False)
        if row is not None:
            summary[f"{method}_start_ms"] = row["start_ms"]
    fork = _find(rows, "fork", heap=True)
    if fork is not None:
        summary["fork_heap_mb"] = fork["parent_heap_mb"]
        summary["fork_child_uss_before_read_mb"] = fork["child_uss_mb"]
        summary["fork_child_uss_after_read_mb"] = fork["uss_after_read_mb"]
    return summary


def _verdict(rows: list[Row]) -> tuple[Verdict, str]:
    fork = _find(rows, "fork", heap=True)
    spawn = _find(rows, "spawn", heap=False)
    fork_bare = _find(rows, "fork", heap=False)
    if fork is None or spawn is None or fork_bare is None:
        return Verdict.SKIPPED, "skipped: needs both fork and spawn (fork is POSIX only)"
    heap = float(fork["parent_heap_mb"] or 0)
    grew = float(fork["uss_after_read_mb"] or 0) - float(fork["child_uss_mb"] or 0)
    fork_ms = float(fork_bare["start_ms"] or 0)
    faster: dict[str, float] = {}
    failures = []
    for method in ("spawn", "forkserver"):
        other = _find(rows, method, heap=False)
        if other is None:
            continue
        than = faster[method] = ratio(float(other["start_ms"] or 0), fork_ms)
        if than < FORK_FASTER:
            failures.append(f"fork started only {than:.2f}x faster than {method}")
        inheriting = _find(rows, method, heap=True)
        if inheriting is not None and inheriting["inherited"]:
            failures.append(f"a {method} child saw the parent's heap")
    if not fork["inherited"]:
        failures.append("the forked child did not see the parent's heap")
    if float(fork["child_uss_mb"] or 0) >= SHARED_SHARE * heap:
        failures.append(
            f"the forked child owned {float(fork['child_uss_mb'] or 0):.0f} MB of a {heap:.0f} MB "
            "heap before reading it: not shared"
        )
    if grew < COPIED_SHARE * heap:
        failures.append(f"reading the heap grew the child's USS by only {grew:.0f} MB")
    return verdict_from(
        failures,
        lambda: (
            "fork started "
            + " and ".join(f"{value:.1f}x faster than {name}" for name, value in faster.items())
            + f"; a forked child of a {heap:.0f} MB "
            f"heap held {float(fork['child_uss_mb'] or 0):.1f} MB of its own until it read the "
            f"heap, then {float(fork['uss_after_read_mb'] or 0):.0f} MB"
        ),
    )


def _chart(ctx: DemoContext, rows: list[Row]) -> str | None:
    def draw(axes: list[Axes]) -> None:
        left, right = axes
        labels = [f"{r['method']}\n{_heap_label(r)}" for r in rows]
        charts.bars(
            left,
            labels,
            [float(r["start_ms"] or 0) for r in rows],
            title="time to start a child (median)",
            ylabel="ms (log)",
            log=True,
        )
        charts.grouped_bars(
            right,
            labels,
            {
                "USS at start": [float(r["child_uss_mb"] or 0) for r in rows],
                "USS after reading heap": [float(r["uss_after_read_mb"] or 0) for r in rows],
                "RSS": [float(r["child_rss_mb"] or 0) for r in rows],
            },
            title="child memory",
            ylabel="MB",
        )

    return ctx.draw_chart(
        NAME, "poollab demo start-methods: fork, spawn, forkserver", draw, panels=2
    )


def _heap_label(row: Row) -> str:
    return "heap" if float(row["parent_heap_mb"] or 0) else "no heap"
