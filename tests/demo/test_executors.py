from __future__ import annotations

from collections.abc import Callable

from poollab.demo.executors import _crossover
from poollab.demo.result import DemoResult, Row

from .conftest import assert_structure


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
    # starting a process costs milliseconds; a thread, far less; the loop starts nothing
    assert best["processes (1 worker)"] > best["threads (default workers)"]
    assert best["threads (default workers)"] > best["loop"]


def test_crossover_is_the_size_from_which_processes_stay_ahead() -> None:
    def row(size: int, threads: float, processes: float) -> Row:
        return {"iterations": size, "threads_ms": threads, "processes_cold_ms": processes}

    rows = [row(1, 1, 9), row(10, 2, 1), row(100, 5, 9), row(1000, 50, 30), row(10_000, 500, 260)]
    assert _crossover(rows, "processes_cold_ms") == 1000
    assert _crossover(rows[:3], "processes_cold_ms") is None
    # a tie is noise, not a win
    assert _crossover([row(1, 1, 9), row(10, 100, 95)], "processes_cold_ms") is None
