"""Child: the same CPU-bound pure-Python calls run serially, in threads, in sub-interpreters
(``InterpreterPoolExecutor``) and in processes, timed inside whichever interpreter runs this
file; prints one JSON line.

Standard library only and self-contained (no poollab import): the `subinterpreters` and
`free-threading` experiments copy this one file into another interpreter's root (a chroot) or
run it with an interpreter given by ``--python``, from 3.11 to 3.14t.

    python parallel_child.py describe
    python parallel_child.py measure '{"kinds": [...], "workers": 2, "calls": 16, ...}'
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import sys
import sysconfig
import time
from concurrent import futures
from contextlib import ExitStack
from typing import Any

# speed-ups are over "serial": the same calls one after another in this thread
SERIAL = "serial"
POOLS: dict[str, Any] = {
    "threads": futures.ThreadPoolExecutor,
    "interpreters": getattr(futures, "InterpreterPoolExecutor", None),
    "processes": futures.ProcessPoolExecutor,
}


def spin(n: int) -> int:
    """Pure-Python CPU work that holds the GIL (where there is one) for its whole run."""
    total = 0
    for i in range(n):
        total += i * i
    return total


def describe() -> dict[str, Any]:
    """The interpreter's version and build, as the experiments record them."""
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return {
        "implementation": platform.python_implementation(),
        "version": platform.python_version(),
        "sys_version": sys.version,
        "executable": sys.executable,
        # Py_GIL_DISABLED: a free-threaded build; _is_gil_enabled(): whether it runs without
        # the GIL now (PYTHON_GIL=1 or an extension module can switch it back on)
        "gil_disabled_build": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "gil_enabled": True if is_enabled is None else bool(is_enabled()),
        "interpreter_pool": POOLS["interpreters"] is not None,
        "cpu_count": os.cpu_count() or 1,
    }


def seconds_per_spin_iteration(sample: int = 200_000) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        spin(sample)
        best = min(best, time.perf_counter() - start)
    return best / sample


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Time ``calls`` calls of spin() per kind, round-robin, best of ``repeats`` or until
    ``budget_s`` runs out; the calls together take about ``serial_s`` on one core."""
    kinds: list[str] = spec["kinds"]
    workers: int = spec["workers"]
    calls: int = spec["calls"]
    unknown = [k for k in kinds if k != SERIAL and k not in POOLS]
    if unknown:
        raise SystemExit(f"unknown kinds {unknown}; choose from {[SERIAL, *POOLS]}")
    size = max(1, int(spec["serial_s"] / calls / seconds_per_spin_iteration()))
    missing = {k: _missing(k) for k in kinds if k != SERIAL and POOLS[k] is None}
    runnable = [k for k in kinds if k not in missing]
    best = dict.fromkeys(runnable, float("inf"))
    cores: dict[str, float | None] = {}
    start_ms: dict[str, float] = {}
    deadline = time.monotonic() + spec["budget_s"]
    with ExitStack() as stack:
        pools = {}
        for kind in runnable:
            if kind == SERIAL:
                continue
            started = time.perf_counter()
            pool = stack.enter_context(_pool(kind, workers))
            # start every worker (an interpreter, a process) before any timing
            list(pool.map(spin, [1] * workers * 2))
            start_ms[kind] = round((time.perf_counter() - started) * 1000, 1)
            pools[kind] = pool
        for _ in range(max(1, spec["repeats"])):
            for kind in runnable:
                wall, cpu = _timed(pools.get(kind), size, calls)
                if wall < best[kind]:
                    best[kind] = wall
                    # process pools burn CPU in other processes, which process_time misses
                    cores[kind] = None if kind == "processes" else round(cpu / wall, 2)
            if time.monotonic() >= deadline:
                break
    serial = best.get(SERIAL)
    rows = [
        {
            "kind": kind,
            "workers": 1 if kind == SERIAL else workers,
            "seconds": best[kind],
            "speedup": round(serial / best[kind], 2) if serial and best[kind] > 0 else None,
            "cores_used": cores.get(kind),
        }
        for kind in runnable
    ]
    return {
        "python": describe(),
        "rows": rows,
        "missing": missing,
        "start_ms": start_ms,
        "iterations_per_call": size,
        "calls": calls,
    }


def _pool(kind: str, workers: int) -> futures.Executor:
    if kind == "processes":
        # spawned workers are this process's own children, reaped at shutdown, so their CPU
        # reaches the parent's count of its children (forkserver's would be the server's, lost
        # when it is killed, and the parent would take that CPU for other programs' load)
        context = multiprocessing.get_context("spawn")
        return futures.ProcessPoolExecutor(workers, mp_context=context)
    executor: futures.Executor = POOLS[kind](workers)
    return executor


def _timed(pool: Any, size: int, calls: int) -> tuple[float, float]:
    cpu = time.process_time()
    start = time.perf_counter()
    if pool is None:
        for _ in range(calls):
            spin(size)
    else:
        list(pool.map(spin, [size] * calls))
    return time.perf_counter() - start, time.process_time() - cpu


def _missing(kind: str) -> str:
    if kind == "interpreters":
        return (
            f"{platform.python_implementation()} {platform.python_version()} has no "
            "concurrent.futures.InterpreterPoolExecutor (CPython 3.14+)"
        )
    return f"{kind}: not available"


def main(argv: list[str]) -> int:
    if argv[1:2] == ["describe"]:
        print(json.dumps(describe()))
        return 0
    if argv[1:2] == ["measure"] and len(argv) == 3:
        print(json.dumps(measure(json.loads(argv[2]))))
        return 0
    print(f"usage: {argv[0]} describe | measure JSON", file=sys.stderr)
    return 2


# the guard matters: process pools (forkserver, spawn) and interpreter pools import this
# file again as their __main__ to find spin()
if __name__ == "__main__":
    sys.exit(main(sys.argv))
