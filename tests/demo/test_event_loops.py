from __future__ import annotations

from collections.abc import Callable

from poollab.demo.result import DemoResult

from .conftest import assert_structure, num, rows_by


def test_structure(quick_result: Callable[[str], DemoResult]) -> None:
    result = quick_result("event-loops")
    assert_structure(result, "event-loops")
    rows = rows_by(result, "workload", "loop")
    assert set(rows) == {
        (w, loop)
        for w in ("echo-protocol", "echo-streams", "http")
        for loop in ("asyncio", "uvloop")
    }
    # which loop wins is left to the verdict: on a loaded 2-core box it is not a safe assertion
    for row in rows.values():
        assert num(row, "round_trips") > 0
        assert num(row, "per_second") > 0
