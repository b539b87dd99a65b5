"""A ``--job`` callable timed in a bare loop, in a process of its own: ``python -m
poollab.measure.bench.userprobe SPEC PARAMS_JSON`` prints its figures as one JSON object.

A process of its own, so that its CPU clock counts the call alone (every thread the call
starts, and the children it waits for) and nothing of the bench's (its progress display),
and so that a callable that crashes or hangs takes nothing else with it. The loop itself is
the built-in bodies' (:func:`poollab.measure.bench.ceilings.time_batches`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import resource
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from poollab.measure.bench.ceilings import (
    UserCalibration,
    least_per_call,
    mean_per_call,
    time_batches,
)

# the bare loop: seconds, and a cap on calls (the callable may have side effects)
SECONDS = 0.3
MAX_CALLS = 5_000
# the threads test runs only while N calls in a row and N at once fit in this many seconds
THREADS_BUDGET_S = 2.0
THREADS_ROUNDS = 9


def process_cpu_s() -> float:
    """CPU seconds of this process (all its threads) and of the children it has reaped."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def thread_speedup(call: Callable[[], Any], threads: int, wall_s: float) -> float:
    """Serial wall ÷ parallel wall for ``threads`` calls: the least serial timing over a few
    rounds ÷ the least parallel one, the two timed back to back in each round; NaN when a
    round would take more than THREADS_BUDGET_S.

    The least of each, as for every bare-loop timing: other work on the machine, a core
    waking late or the GIL handed over late only ever add to a timing. A ratio per round
    cannot be cleaned that way: a burst during the serial half inflates it (a pure-Python
    call read 3.6×), one during the parallel half deflates it (a median put a GIL-releasing
    hash at 0.07 overlap while the threads pool ran it on 1.5 cores)."""
    if wall_s * threads * 2 > THREADS_BUDGET_S:
        return math.nan
    serial: list[float] = []
    parallel: list[float] = []
    deadline = time.perf_counter() + THREADS_BUDGET_S
    for _ in range(THREADS_ROUNDS):
        began = time.perf_counter()
        for _ in range(threads):
            call()
        serial.append(time.perf_counter() - began)
        parallel.append(_at_once(call, threads))
        if time.perf_counter() > deadline:
            break
    return min(serial) / max(min(parallel), 1e-9)


def _at_once(call: Callable[[], Any], threads: int) -> float:
    start = threading.Barrier(threads + 1)
    failed: list[BaseException] = []

    def run() -> None:
        start.wait()
        try:
            call()
        except BaseException as exc:  # re-raised in the probe's own thread
            failed.append(exc)

    workers = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    if failed:
        raise failed[0]
    return time.perf_counter() - began


def probe(
    spec: str, params: dict[str, Any], threads: int, seconds: float = SECONDS
) -> UserCalibration:
    from poollab.userjobs import check_json, load_spec, run_blocking

    job = load_spec(spec)

    def call() -> Any:
        return run_blocking(job, params)

    check_json(call())  # the first call: imports, connections; and a result JSON can store

    def batch(n: int) -> None:
        for _ in range(n):
            call()

    batches = time_batches(batch, seconds, clock=process_cpu_s, max_calls=MAX_CALLS)
    # the least per call: a busy machine only ever adds to a timing
    cpu_ms = least_per_call(batches, lambda b: b.cpu)
    wall_ms = least_per_call(batches, lambda b: b.wall)
    cpu_ms_mean = mean_per_call(batches, lambda b: b.cpu)
    wall_ms_mean = mean_per_call(batches, lambda b: b.wall)
    speedup = thread_speedup(call, threads, wall_ms / 1000)
    loop_cpu_ms = loop_wall_ms = math.nan
    if job.is_async:
        loop_cpu_ms, loop_wall_ms = _on_one_loop(job.fn, params, seconds)
    return UserCalibration(
        params=params,
        is_async=job.is_async,
        jobs=sum(b.calls for b in batches),
        cpu_ms=round(cpu_ms, 6),
        cpu_ms_mean=round(cpu_ms_mean, 6),
        thread_cpu_ms=round(least_per_call(batches, lambda b: b.own), 6),
        wall_ms=round(wall_ms, 6),
        wall_ms_mean=round(wall_ms_mean, 6),
        cpu_share=round(cpu_ms / wall_ms, 4) if wall_ms > 0 else math.nan,
        threads=threads,
        thread_speedup=round(speedup, 3),
        thread_overlap=round(min(max((speedup - 1) / (threads - 1), 0.0), 1.0), 3)
        if math.isfinite(speedup)
        else math.nan,
        loop_cpu_ms=loop_cpu_ms,
        loop_wall_ms=loop_wall_ms,
    )


def _on_one_loop(
    fn: Callable[..., Any], params: dict[str, Any], seconds: float
) -> tuple[float, float]:
    """An async callable awaited call after call on one loop, as the asyncio consumer runs
    it: the loop thread's CPU and the wall per call (ms, least over the batches)."""
    loop = asyncio.new_event_loop()

    async def calls(n: int) -> None:
        for _ in range(n):
            await fn(**params)

    try:
        batches = time_batches(
            lambda n: loop.run_until_complete(calls(n)), seconds, max_calls=MAX_CALLS
        )
    finally:
        loop.close()
    return (
        round(least_per_call(batches, lambda b: b.own), 6),
        round(least_per_call(batches, lambda b: b.wall), 6),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("spec", help="MODULE:FUNCTION")
    parser.add_argument("params", help="a JSON object: the keyword arguments")
    parser.add_argument("--threads", type=int, default=2, help="calls at once in the threads test")
    parser.add_argument("--seconds", type=float, default=SECONDS, help="of bare loop")
    args = parser.parse_args(argv)
    try:
        found = probe(args.spec, json.loads(args.params), max(args.threads, 2), args.seconds)
    except Exception as exc:
        print(f"{args.spec}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(found)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
