"""AnyIO: one program on three backends, and async file I/O against blocking reads."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import uvloop
from matplotlib.axes import Axes

from poollab.demo.anyio_program import Outcome, Sizes, program, read_sizes, read_sizes_blocking
from poollab.demo.context import DemoContext
from poollab.demo.heartbeat import Heartbeat
from poollab.demo.result import DemoResult, Row, Section, Verdict, verdict_from
from poollab.measure import charts

NAME = "anyio"
CLAIM = (
    "One AnyIO program (a task group of sleepers, a loopback TCP echo, async file reads) runs "
    "unchanged on asyncio, asyncio + uvloop and trio and computes the same on each (every "
    "sleeper, every round trip, the same digest of the files), its sleepers overlapping on "
    "every backend (under a tenth of their time in turn). Blocking file reads inside a "
    "coroutine stop the loop for all of them (worst heartbeat lag at least 80% of their wall "
    "time); anyio.Path's async reads keep it beating (worst lag under half of theirs)."
)
TALK = "AnyIO: the same code on asyncio or trio, and async file I/O"
BACKENDS: dict[str, tuple[str, dict[str, Any]]] = {
    "asyncio": ("asyncio", {}),
    "asyncio + uvloop": ("asyncio", {"loop_factory": uvloop.new_event_loop}),
    "trio": ("trio", {}),
}
# "overlapping": N sleepers of s seconds in one task group take about s, not N x s; the
# share leaves room for starting N tasks, which costs trio more than asyncio
OVERLAP_SHARE = 0.1
# blocking reads: the loop cannot beat until they return, so its worst lag is about their
# whole wall time (this share of it, for the heartbeat's own tick)
BLOCKED_SHARE = 0.8
# async reads: the loop beats between and during them
BEATING_SHARE = 0.5


def run(ctx: DemoContext) -> DemoResult:
    repeats = ctx.pick(2, 3)
    with tempfile.TemporaryDirectory(prefix="poollab-anyio-") as tmp:
        small = _write_files(Path(tmp) / "small", ctx.pick(8, 32), 256 * 1024)
        large = _write_files(Path(tmp) / "large", ctx.pick(24, 64), 16 * 2**20)
        sizes = Sizes(
            sleepers=ctx.pick(200, 2000),
            sleep_s=0.05,
            clients=ctx.pick(10, 20),
            round_trips=ctx.pick(200, 1000),
            files=small,
        )
        with ctx.progress.task("anyio: three backends, then file reads", total=5) as advance:
            rows = _backends(sizes, repeats, advance)
            file_rows = [
                _reads("blocking Path.read_bytes() in the coroutine", large, blocking=True),
                _reads("await anyio.Path.read_bytes()", large, blocking=False),
            ]
            advance(2)
    verdict, reason = _verdict(rows, file_rows, sizes)
    return DemoResult(
        name=NAME,
        claim=CLAIM,
        talk=TALK,
        columns=[
            "backend",
            "sleep_s",
            "echo_s",
            "round_trips_per_s",
            "files_s",
            "wall_s",
            "cpu_s",
            "same_results",
        ],
        rows=rows,
        verdict=verdict,
        reason=reason,
        summary={
            **{f"{r['backend']}_wall_s": r["wall_s"] for r in rows},
            **{f"{r['backend']}_cpu_s": r["cpu_s"] for r in rows},
        },
        sections=[
            Section(
                "file reads on the asyncio backend, beside a 5 ms heartbeat",
                ["reads", "files", "mib", "wall_s", "lag_p50_ms", "lag_p99_ms", "lag_max_ms"],
                file_rows,
            )
        ],
        notes=[
            f"the program: {sizes.sleepers} sleepers of {sizes.sleep_s * 1000:.0f} ms in one "
            f"task group; {sizes.clients} clients x {sizes.round_trips} round trips of 64 "
            f"bytes to an echo server of its own on 127.0.0.1; {len(small)} files of 256 KiB "
            "read with anyio.Path and hashed",
            f"each backend's figures are from its fastest of {repeats} runs; cpu_s is this "
            "process's CPU time over that run (AnyIO's worker threads included)",
            f"file reads: {len(large)} files of 16 MiB (in the page cache: just written), read "
            "one after another by one coroutine",
            f"held means: same results everywhere, sleep_s under {OVERLAP_SHARE:.0%} of the "
            f"sleepers' {sizes.sleepers * sizes.sleep_s:.0f} s in turn; "
            f"blocking reads' worst lag at least {BLOCKED_SHARE:.0%} of their wall time, async "
            f"reads' under {BEATING_SHARE:.0%} of theirs",
        ],
        chart=_chart(ctx, rows, file_rows),
        quick=ctx.quick,
    )


def _write_files(directory: Path, count: int, size: int) -> list[Path]:
    directory.mkdir(parents=True)
    paths = []
    for index in range(count):
        path = directory / f"{index:03d}.bin"
        # different content per file, so that the digest depends on reading each one
        path.write_bytes(index.to_bytes(4, "big") * (size // 4))
        paths.append(path)
    return paths


def _backends(sizes: Sizes, repeats: int, advance: Callable[[float], None]) -> list[Row]:
    best: dict[str, tuple[float, float, Outcome]] = {}
    for _ in range(repeats):
        for label, (backend, options) in BACKENDS.items():
            cpu = time.process_time()
            start = time.perf_counter()
            outcome = anyio.run(program, sizes, backend=backend, backend_options=options)
            wall = time.perf_counter() - start
            cpu = time.process_time() - cpu
            if label not in best or wall < best[label][0]:
                best[label] = (wall, cpu, outcome)
    advance(3)
    reference = best["asyncio"][2]
    rows: list[Row] = []
    for label, (wall, cpu, outcome) in best.items():
        rows.append(
            {
                "backend": label,
                "sleep_s": round(outcome.sleep_s, 3),
                "echo_s": round(outcome.echo_s, 3),
                "round_trips_per_s": round(outcome.echoed / outcome.echo_s),
                "files_s": round(outcome.files_s, 3),
                "wall_s": round(wall, 3),
                "cpu_s": round(cpu, 3),
                "same_results": _complete(outcome, sizes) and outcome.digest == reference.digest,
            }
        )
    return rows


def _complete(outcome: Outcome, sizes: Sizes) -> bool:
    return outcome.slept == sizes.sleepers and outcome.echoed == sizes.clients * sizes.round_trips


def _reads(label: str, files: list[Path], blocking: bool) -> Row:
    async def read() -> int:
        if blocking:
            return read_sizes_blocking(files)
        return await read_sizes(files)

    beat, wall, total = anyio.run(_beside_heartbeat, read)
    return {
        "reads": label,
        "files": len(files),
        "mib": round(total / 2**20),
        "wall_s": round(wall, 4),
        **beat.figures_ms(),
    }


async def _beside_heartbeat(read: Callable[[], Awaitable[int]]) -> tuple[Heartbeat, float, int]:
    beat = Heartbeat()
    async with anyio.create_task_group() as group:
        group.start_soon(beat.run, anyio.sleep)
        await anyio.sleep(4 * beat.tick_s)  # beating before the reads begin
        start = time.perf_counter()
        total = await read()
        wall = time.perf_counter() - start
        beat.stop()
    return beat, wall, total


def _verdict(rows: list[Row], file_rows: list[Row], sizes: Sizes) -> tuple[Verdict, str]:
    failures = []
    for row in rows:
        if row["same_results"] is not True:
            failures.append(f"{row['backend']} computed something else")
        in_turn = sizes.sleepers * sizes.sleep_s
        if float(row["sleep_s"] or 0) > OVERLAP_SHARE * in_turn:
            failures.append(
                f"{row['backend']}: {sizes.sleepers} sleepers took {row['sleep_s']} s, more "
                f"than {OVERLAP_SHARE:.0%} of their {in_turn:.0f} s in turn"
            )
    blocking, async_reads = file_rows
    blocked_lag = float(blocking["lag_max_ms"] or 0) / 1000
    blocked_wall = float(blocking["wall_s"] or 0)
    if blocked_lag < BLOCKED_SHARE * blocked_wall:
        failures.append(
            f"blocking reads: worst lag {blocked_lag * 1000:.0f} ms, under "
            f"{BLOCKED_SHARE:.0%} of their {blocked_wall * 1000:.0f} ms"
        )
    async_lag = float(async_reads["lag_max_ms"] or 0) / 1000
    async_wall = float(async_reads["wall_s"] or 0)
    if async_lag >= BEATING_SHARE * async_wall:
        failures.append(
            f"async reads: worst lag {async_lag * 1000:.0f} ms, not under {BEATING_SHARE:.0%} "
            f"of their {async_wall * 1000:.0f} ms"
        )
    walls = ", ".join(f"{r['backend']} {r['wall_s']} s" for r in rows)
    return verdict_from(
        failures,
        lambda: (
            f"same results on every backend ({walls}); blocking reads stalled the loop "
            f"{blocked_lag * 1000:.0f} ms of their {blocked_wall * 1000:.0f} ms, async reads "
            f"at worst {async_lag * 1000:.1f} ms of {async_wall * 1000:.0f} ms"
        ),
    )


def _chart(ctx: DemoContext, rows: list[Row], file_rows: list[Row]) -> str | None:
    def draw(axes: list[Axes]) -> None:
        left, right = axes
        charts.grouped_bars(
            left,
            [str(r["backend"]) for r in rows],
            {
                "sleepers": [float(r["sleep_s"] or 0) for r in rows],
                "echo": [float(r["echo_s"] or 0) for r in rows],
                "files": [float(r["files_s"] or 0) for r in rows],
                "CPU (whole run)": [float(r["cpu_s"] or 0) for r in rows],
            },
            title="one AnyIO program per backend (seconds)",
            ylabel="seconds",
        )
        charts.grouped_bars(
            right,
            ["blocking reads", "anyio.Path reads"],
            {
                "reads' wall time": [float(r["wall_s"] or 0) * 1000 for r in file_rows],
                "worst loop lag": [float(r["lag_max_ms"] or 0) for r in file_rows],
            },
            title="file reads inside the loop (ms)",
            ylabel="ms",
        )

    return ctx.draw_chart(NAME, "poollab demo anyio: one program, three backends", draw, panels=2)
