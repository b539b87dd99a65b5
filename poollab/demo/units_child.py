"""Child of the coroutines-vs-threads experiment, run in a fresh interpreter per measurement.

Usage: units_child.py coroutines|threads COUNT BUDGET_SECONDS
Creates COUNT units that all wait on one event, measures the time taken and the memory held
while they all wait, and prints one JSON line. A fresh process per figure keeps
one measurement's freed memory from hiding the next one's growth.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import threading
import time
from typing import Any

import psutil

CHECK_EVERY = 500  # units between looks at the clock


def main(argv: list[str]) -> None:
    kind, count, budget = argv[0], int(argv[1]), float(argv[2])
    if kind == "coroutines":
        result = asyncio.run(_coroutines(count, budget))
    elif kind == "threads":
        result = _threads(count, budget)
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    print(json.dumps(result), flush=True)
    # leave without waking the units: thousands of threads woken at once would queue for the
    # GIL one switch interval (5 ms) at a time, a minute for 10,000; the kernel ends them all
    os._exit(0)


async def _wait(release: asyncio.Event) -> None:
    await release.wait()


async def _coroutines(count: int, budget: float) -> dict[str, Any]:
    release = asyncio.Event()
    before = _memory()
    start = time.perf_counter()
    stopped = None
    tasks = []
    for i in range(count):
        tasks.append(asyncio.create_task(_wait(release)))
        if i % CHECK_EVERY == 0 and time.perf_counter() - start > budget:
            stopped = f"time budget of {budget:.0f} s"
            break
    # one turn of the loop runs every task to its first await: all frames are now live
    await asyncio.sleep(0)
    elapsed = time.perf_counter() - start
    after = _memory()
    release.set()
    await asyncio.gather(*tasks)  # coroutines wake cheaply: no need to skip this
    return _report(len(tasks), elapsed, before, after, stopped)


def _threads(count: int, budget: float) -> dict[str, Any]:
    release = threading.Event()
    before = _memory()
    start = time.perf_counter()
    stopped = None
    threads = []
    for i in range(count):
        thread = threading.Thread(target=release.wait, daemon=True)
        try:
            thread.start()
        except RuntimeError as exc:  # the system's thread limit
            stopped = f"could not start thread {i + 1}: {exc}"
            break
        threads.append(thread)
        if i % CHECK_EVERY == 0 and time.perf_counter() - start > budget:
            stopped = f"time budget of {budget:.0f} s"
            break
    elapsed = time.perf_counter() - start
    after = _memory()
    return _report(len(threads), elapsed, before, after, stopped)


def _memory() -> tuple[int, int]:
    gc.collect()
    info = psutil.Process().memory_info()
    return info.rss, info.vms


def _report(
    created: int,
    elapsed: float,
    before: tuple[int, int],
    after: tuple[int, int],
    stopped: str | None,
) -> dict[str, Any]:
    return {
        "created": created,
        "seconds": elapsed,
        "rss_delta": after[0] - before[0],
        "vms_delta": after[1] - before[1],
        "stopped": stopped,
    }


if __name__ == "__main__":
    main(sys.argv[1:])
