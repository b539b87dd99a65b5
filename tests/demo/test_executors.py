from __future__ import annotations

import os
from collections.abc import Callable

from poollab.demo import executors
from poollab.demo.executors import _crossover, _verdict
from poollab.demo.result import DemoResult, Row, Verdict, ratio

from .conftest import assert_structure, assert_verdict_follows


def test_structure(quick_result: Callable[[str], DemoResult]) -> None:
    result = quick_result("executors")
    assert_structure(result, "executors")
    configs = [row["config"] for row in result.rows]
    assert configs[:3] == ["loop", "threads (default workers)", "processes (1 worker)"]
    assert all(float(row["median_ms"] or 0) > 0 for row in result.rows)
    (sweep,) = result.sections
    # how far the sweep gets within its time budget depends on the machine's load
    assert len(sweep.rows) >= 1
    assert {"threads_ms", "processes_cold_ms", "processes_warm_ms"} <= set(sweep.columns)


def test_tiny_jobs_processes_slower_than_threads_slower_than_loop(
    quick_result: Callable[[str], DemoResult],
) -> None:
    best = {row["config"]: float(row["best_ms"] or 0) for row in quick_result("executors").rows}
    # the order only: starting a process costs milliseconds, a thread far less, the loop
    # nothing. By how much (the claim's 5x) depends on the load and is the verdict's business
    assert best["processes (1 worker)"] > best["threads (default workers)"]
    assert best["threads (default workers)"] > best["loop"]


def test_reported_verdict_is_the_rule_applied_to_the_reported_figures(
    quick_result: Callable[[str], DemoResult],
) -> None:
    result = quick_result("executors")
    cpu = os.cpu_count() or 1
    best = {str(row["config"]): float(row["best_ms"] or 0) for row in result.rows}
    one = best["processes (1 worker)"]
    many = best[f"processes ({cpu} worker{'s' if cpu > 1 else ''})"]
    (sweep,) = result.sections
    rule, _ = _verdict(
        cpu,
        ratio(many, one),
        ratio(one, best["threads (default workers)"]),
        _crossover(sweep.rows, "processes_cold_ms"),
        sweep.rows,
    )
    assert_verdict_follows(result, rule)


def test_crossover_is_the_size_from_which_processes_stay_ahead() -> None:
    def row(size: int, threads: float, processes: float) -> Row:
        return {"iterations": size, "threads_ms": threads, "processes_cold_ms": processes}

    rows = [row(1, 1, 9), row(10, 2, 1), row(100, 5, 9), row(1000, 50, 30), row(10_000, 500, 260)]
    assert _crossover(rows, "processes_cold_ms") == 1000
    assert _crossover(rows[:3], "processes_cold_ms") is None
    # a tie is noise, not a win: 10% is the margin
    assert _crossover([row(1, 1, 9), row(10, 100, 95)], "processes_cold_ms") is None
    assert _crossover([row(1, 1, 9), row(10, 100, 89)], "processes_cold_ms") == 10


def test_rule_asks_for_what_the_claim_says() -> None:
    sweep: list[Row] = [{"iterations": 1_000_000}]
    assert _verdict(2, 1.2, 10.0, 100_000, sweep)[0] is Verdict.HELD
    # threads at least 5x faster than a 1-worker pool: 4.9x is not enough
    assert executors.MIN_THREAD_ADVANTAGE == 5.0
    verdict, reason = _verdict(2, 1.2, 4.9, 100_000, sweep)
    assert verdict is Verdict.NOT_HELD and "4.9x" in reason
    assert _verdict(2, 1.2, 5.0, 100_000, sweep)[0] is Verdict.HELD
    # cpu_count() workers slower than 1 by at least 5%: a tie within noise is not "slower"
    verdict, reason = _verdict(2, 1.04, 10.0, 100_000, sweep)
    assert verdict is Verdict.NOT_HELD and "1.04x" in reason
    assert _verdict(2, 1.05, 10.0, 100_000, sweep)[0] is Verdict.HELD
    # on one core the two pools are the same: that part is not asked
    assert _verdict(1, 1.0, 10.0, 100_000, sweep)[0] is Verdict.HELD
    # processes must win from some size on
    verdict, reason = _verdict(2, 1.2, 10.0, None, sweep)
    assert verdict is Verdict.NOT_HELD and "1,000,000" in reason


def test_the_talks_own_figures_are_judged_apart_from_the_rule() -> None:
    # ~100x is read as at least 50x, "nearly 2x" as at least 1.7x: 11x passes the rule's 5x
    # and is still reported as the talk's figure not holding
    assert executors.TALK_THREAD_ADVANTAGE == 50.0
    assert executors.TALK_MORE_WORKERS_SLOWER == 1.7
    text = executors.talk_figures(2, 1.2, 11.0)
    assert "~100x (>= 50x) did not hold: threads 11.0x" in text
    assert "nearly 2x (>= 1.7x) did not hold: 2 workers 1.20x" in text
    text = executors.talk_figures(2, 1.7, 50.0)
    assert "~100x (>= 50x) held" in text and "nearly 2x (>= 1.7x) held" in text
    assert "nearly 2x" not in executors.talk_figures(1, 1.0, 80.0)
