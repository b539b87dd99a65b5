"""Runs experiments by name, times them, and turns a crash into a reported result."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable

from poollab.demo import registry
from poollab.demo.background import BackgroundLoad
from poollab.demo.context import DemoContext
from poollab.demo.result import DemoResult, Verdict


def run_one(name: str, ctx: DemoContext) -> DemoResult:
    entry = registry.get(name)
    if entry is None:
        raise KeyError(name)
    start = time.perf_counter()
    meter = BackgroundLoad()
    try:
        with meter:
            result = entry.load()(ctx)
    except Exception as exc:
        # one broken experiment must not hide the others' figures in `poollab demo all`
        result = DemoResult(
            name=name,
            claim=entry.summary,
            talk="",
            columns=["status"],
            rows=[{"status": f"error: {exc!r}"}],
            verdict=Verdict.ERROR,
            reason=f"{type(exc).__name__}: {exc}",
            notes=traceback.format_exc().strip().splitlines()[-6:],
            quick=ctx.quick,
        )
    result.quick = ctx.quick
    result.elapsed_s = round(time.perf_counter() - start, 2)
    result.background_cores = round(meter.other_cores, 2)
    return judge_fairness(result, meter.busy, meter.cpu_count)


def judge_fairness(result: DemoResult, busy: bool, cpu_count: int) -> DemoResult:
    """A claim that failed while other programs took the CPU was not fairly tested."""
    if busy and result.verdict is Verdict.NOT_HELD:
        result.verdict = Verdict.INCONCLUSIVE
        result.reason = (
            f"{result.reason}; but other programs kept {result.background_cores:.1f} of "
            f"{cpu_count} cores busy during the run, so this is no fair test: run it again "
            "on a quiet machine"
        )
    elif busy and result.verdict is Verdict.HELD:
        result.notes.append(
            f"held although other programs kept {result.background_cores:.1f} of "
            f"{cpu_count} cores busy during the run"
        )
    return result


def run_many(
    names: list[str],
    ctx: DemoContext,
    on_result: Callable[[DemoResult], None] | None = None,
) -> list[DemoResult]:
    results = []
    for name in names:
        result = run_one(name, ctx)
        if on_result is not None:
            on_result(result)
        results.append(result)
    return results
