"""Sub-interpreters: CPU-bound Python in 1, 2, 4 interpreters of one process, each with its own
GIL (PEP 684), against the same work in threads of one interpreter."""

from __future__ import annotations

import inspect
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from types import ModuleType

from poollab.demo.budget import Deadline
from poollab.demo.context import DemoContext
from poollab.demo.result import DemoResult, Verdict, skipped
from poollab.demo.runtime import interpreters_module, subinterpreters_missing, this_python
from poollab.demo.scaling import (
    CALLS,
    WORKERS,
    Scaling,
    measure_round_robin,
    scaling_chart,
    scaling_rows,
    speedup,
)
from poollab.demo.workloads import iterations_for, noop, seconds_per_spin_iteration, spin

NAME = "subinterpreters"
CLAIM = (
    "Sub-interpreters, each with its own GIL, run CPU-bound Python in parallel inside one "
    "process, where threads of one interpreter cannot."
)
TALK = "PEP 684/734: one GIL per interpreter; interpreters in threads scale with the cores"
SPEEDUP = 1.4


class _Interpreters:
    """One face for 3.14's ``concurrent.interpreters`` and 3.13's private ``_interpreters``."""

    def __init__(self, module: ModuleType) -> None:
        self._module = module
        self._public = module.__name__ == "concurrent.interpreters"

    def create(self) -> object:
        return self._module.create()

    def exec(self, handle: object, code: str) -> None:
        if self._public:
            handle.exec(code)  # type: ignore[attr-defined]
            return
        failure = self._module.exec(handle, code)
        if failure is not None:
            raise RuntimeError(f"sub-interpreter failed: {failure}")

    def close(self, handle: object) -> None:
        if self._public:
            handle.close()  # type: ignore[attr-defined]
        else:
            self._module.destroy(handle)


def run(ctx: DemoContext) -> DemoResult:
    missing = subinterpreters_missing()
    module = interpreters_module()
    if missing is not None or module is None:
        return skipped(NAME, CLAIM, TALK, missing or "skipped: no interpreters module")
    interpreters = _Interpreters(module)
    cpu = os.cpu_count() or 1
    size = iterations_for(ctx.pick(0.25, 1.6) / CALLS, seconds_per_spin_iteration())
    repeats = ctx.pick(2, 3)
    create_ms: list[float] = []
    with ExitStack() as stack:
        items = []
        for workers in WORKERS:
            handles = []
            for _ in range(workers):
                start = time.perf_counter()
                handle = interpreters.create()
                create_ms.append((time.perf_counter() - start) * 1000)
                stack.callback(interpreters.close, handle)
                handles.append(handle)
            pool = stack.enter_context(ThreadPoolExecutor(workers))
            code = _code(CALLS // workers, size)
            items.append(
                Scaling(
                    "subinterpreters", workers, _in_interpreters(pool, interpreters, handles, code)
                )
            )
            threads = stack.enter_context(ThreadPoolExecutor(workers))
            list(threads.map(noop, range(workers * 2)))
            items.append(Scaling("threads", workers, _in_threads(threads, size)))
        with ctx.progress.task("subinterpreters: interpreters and threads", repeats) as advance:
            measure_round_robin(items, repeats, Deadline(ctx.pick(7.0, 50.0)), advance)
    rows = scaling_rows(items)
    usable = min(cpu, max(WORKERS))
    gained = speedup(rows, "subinterpreters", usable)
    if cpu < 2:
        verdict, reason = Verdict.NOT_HELD, "one core: interpreters cannot run in parallel here"
    elif gained >= SPEEDUP:
        verdict, reason = (
            Verdict.HELD,
            (
                f"{usable} interpreters {gained:.2f}x faster than 1; {usable} threads "
                f"{speedup(rows, 'threads', usable):.2f}x"
            ),
        )
    else:
        verdict, reason = Verdict.NOT_HELD, f"{usable} interpreters only {gained:.2f}x faster"
    return DemoResult(
        name=NAME,
        claim=CLAIM,
        talk=TALK,
        columns=["kind", "workers", "seconds", "speedup", "cores_used"],
        rows=rows,
        verdict=verdict,
        reason=reason,
        summary={
            f"interpreter_speedup_{usable}": round(gained, 2),
            "create_interpreter_ms": round(statistics.median(create_ms), 2),
            "python": this_python(),
            "module": module.__name__,
        },
        notes=[f"held means: {usable} interpreters at least {SPEEDUP}x faster than 1"],
        chart=scaling_chart(ctx, NAME, rows, "poollab demo subinterpreters"),
        quick=ctx.quick,
    )


def _code(calls: int, size: int) -> str:
    # the same function as the other experiments, compiled afresh inside each interpreter
    return f"{inspect.getsource(spin)}\nfor _ in range({calls}):\n    spin({size})\n"


def _in_interpreters(
    pool: ThreadPoolExecutor, interpreters: _Interpreters, handles: list[object], code: str
) -> Callable[[], object]:
    return lambda: list(pool.map(lambda handle: interpreters.exec(handle, code), handles))


def _in_threads(pool: ThreadPoolExecutor, size: int) -> Callable[[], object]:
    return lambda: list(pool.map(spin, [size] * CALLS))
