from __future__ import annotations

from collections.abc import Callable

from poollab.demo.result import DemoResult

from .conftest import assert_structure


def test_structure(quick_result: Callable[[str], DemoResult]) -> None:
    result = quick_result("sleep")
    assert_structure(result, "sleep")
    assert result.rows[0]["sleeper"] == "long"


def test_sleepers_overlap_and_short_ones_finish_first(
    quick_result: Callable[[str], DemoResult],
) -> None:
    result = quick_result("sleep")
    assert float(result.summary["threaded_s"] or 0) < 0.9 * float(
        result.summary["sequential_s"] or 0
    )
    assert result.summary["short_sleepers_finished_first"] is True
    long_end = float(result.rows[0]["finished_s"] or 0)
    assert long_end >= float(result.rows[0]["sleep_s"] or 0)
