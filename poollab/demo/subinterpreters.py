"""Sub-interpreters: CPU-bound pure-Python calls in ``InterpreterPoolExecutor`` (CPython 3.14,
one GIL per interpreter, PEP 684/734) against the same calls serially, in threads and in
processes. Runs in CPython 3.14: this one, the one `poollab interpreters get 3.14` cached, or
one given with ``--python``."""

from __future__ import annotations

from poollab.demo import interpreters, other_python
from poollab.demo.context import DemoContext
from poollab.demo.result import DemoResult, skipped

NAME = "subinterpreters"
CLAIM = (
    "Sub-interpreters, each with its own GIL, run CPU-bound Python in parallel inside one "
    "process: InterpreterPoolExecutor with as many interpreters as cores is at least 0.7x that "
    "many times faster than serial calls (1.4x on 2 cores). Threads and processes are measured "
    "alongside."
)
TALK = "PEP 684/734: one GIL per interpreter; interpreters in threads scale with the cores"
KIND = "interpreters"
KINDS = ["serial", "threads", KIND, "processes"]


def run(ctx: DemoContext) -> DemoResult:
    interpreter, how = interpreters.for_subinterpreters(ctx.python)
    if interpreter is None:
        return skipped(NAME, CLAIM, TALK, f"skipped: {how}")
    described = interpreter.describe()
    if not described["interpreter_pool"]:
        return skipped(
            NAME,
            CLAIM,
            TALK,
            f"skipped: {interpreter.label()} ({how}) is {interpreters.build_of(described)}, "
            "without concurrent.futures.InterpreterPoolExecutor (CPython 3.14+): get CPython "
            f"3.14 with `{interpreters.GET_314}`, or give one with --python PATH",
        )
    answer = other_python.measure(
        ctx, interpreter, KINDS, "subinterpreters: serial, threads, interpreters, processes"
    )
    return other_python.judged(ctx, (NAME, CLAIM, TALK), (interpreter, how), answer, KIND)
