"""Sub-interpreters: CPU-bound Python in 1, 2, 4 interpreters of one process, each with its own
GIL (PEP 684), against the same work in threads of one interpreter."""

from __future__ import annotations

import inspect
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from types import ModuleType

from poollab.demo import scaling
from poollab.demo.context import DemoContext
from poollab.demo.result import DemoResult, Verdict, skipped
from poollab.demo.runtime import interpreters_module, subinterpreters_missing, this_python
from poollab.demo.workloads import noop, spin

NAME = "subinterpreters"
CLAIM = (
    "Sub-interpreters, each with its own GIL, run CPU-bound Python in parallel inside one "
    "process: as many interpreters as cores are at least 0.7x that many times faster than 1 "
    "(1.4x on 2 cores). Threads of one interpreter are measured alongside for comparison."
)
TALK = "PEP 684/734: one GIL per interpreter; interpreters in threads scale with the cores"


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
    size = scaling.spin_size(ctx, 1.6)
    create_ms: list[float] = []

    def build(stack: ExitStack) -> list[scaling.Scaling]:
        items = []
        for workers in scaling.WORKERS:
            handles = []
            for _ in range(workers):
                start = time.perf_counter()
                handle = interpreters.create()
                create_ms.append((time.perf_counter() - start) * 1000)
                stack.callback(interpreters.close, handle)
                handles.append(handle)
            pool = stack.enter_context(ThreadPoolExecutor(workers))
            code = _code(scaling.CALLS // workers, size)
            work = _in_interpreters(pool, interpreters, handles, code)
            items.append(scaling.Scaling("subinterpreters", workers, work))
            threads = stack.enter_context(ThreadPoolExecutor(workers))
            list(threads.map(noop, range(workers * 2)))
            items.append(scaling.Scaling("threads", workers, _in_threads(threads, size)))
        return items

    description = "subinterpreters: interpreters and threads"
    rows = scaling.measure_scaling(ctx, description, build, full_budget_s=50.0)
    cpu, usable = scaling.usable_workers()
    gained = scaling.speedup(rows, "subinterpreters", usable)
    verdict, reason = scaling.parallel_verdict(cpu, gained, "interpreters")
    if verdict is Verdict.HELD:
        reason += f"; {usable} threads {scaling.speedup(rows, 'threads', usable):.2f}x"
    return scaling.scaling_result(
        ctx,
        (NAME, CLAIM, TALK),
        rows,
        (verdict, reason),
        summary={
            f"interpreter_speedup_{usable}": round(gained, 2),
            "create_interpreter_ms": round(statistics.median(create_ms), 2),
            "python": this_python(),
            "module": module.__name__,
        },
        notes=[
            f"held means: {usable} interpreters at least {scaling.needed_speedup(usable):.1f}x "
            "faster than 1"
        ],
        chart_title="poollab demo subinterpreters",
    )


def _code(calls: int, size: int) -> str:
    # the same function as the other experiments, compiled afresh inside each interpreter
    return f"{inspect.getsource(spin)}\nfor _ in range({calls}):\n    spin({size})\n"


def _in_interpreters(
    pool: ThreadPoolExecutor, interpreters: _Interpreters, handles: list[object], code: str
) -> Callable[[], object]:
    return lambda: list(pool.map(lambda handle: interpreters.exec(handle, code), handles))


def _in_threads(pool: ThreadPoolExecutor, size: int) -> Callable[[], object]:
    return lambda: list(pool.map(spin, [size] * scaling.CALLS))
