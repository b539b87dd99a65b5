"""Free-threading: CPU-bound pure-Python calls in threads on a build where the GIL is off
(3.13t / 3.14t, PEP 703), against the same calls serially and in processes. Runs in this
Python when it is such a build, else in a python3.14t / python3.13t on PATH, or one given with
``--python``; no Debian release packages one."""

from __future__ import annotations

from poollab.demo import interpreters, other_python
from poollab.demo.context import DemoContext
from poollab.demo.result import DemoResult, skipped

NAME = "free-threading"
CLAIM = (
    "On a free-threaded build (PEP 703) threads run CPU-bound Python in parallel: as many threads "
    "as cores are at least 0.7x that many times faster than serial calls (1.4x on 2 cores)."
)
TALK = "Python 3.13t can switch the GIL off; CPU-bound threads then scale with the cores"
KIND = "threads"
KINDS = ["serial", KIND, "processes"]


def run(ctx: DemoContext) -> DemoResult:
    interpreter, how = interpreters.for_free_threading(ctx.python)
    if interpreter is None:
        return skipped(NAME, CLAIM, TALK, f"skipped: {how}")
    described = interpreter.describe()
    build = interpreters.build_of(described)
    if not described["gil_disabled_build"]:
        return skipped(
            NAME,
            CLAIM,
            TALK,
            f"skipped: {interpreter.label()} ({how}) is {build}, not a free-threaded build: "
            + interpreters.FREE_THREADED_HOWTO,
        )
    if described["gil_enabled"]:
        return skipped(
            NAME,
            CLAIM,
            TALK,
            f"skipped: {interpreter.label()} ({how}) is {build}: an extension module it "
            "imports switched the GIL back on",
        )
    answer = other_python.measure(ctx, interpreter, KINDS, "free-threading: serial, threads")
    return other_python.judged(ctx, (NAME, CLAIM, TALK), (interpreter, how), answer, KIND)
