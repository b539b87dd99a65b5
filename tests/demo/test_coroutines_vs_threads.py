from __future__ import annotations

from collections.abc import Callable

from poollab.demo.result import DemoResult

from .conftest import assert_structure, num, rows_by


def test_structure_and_quick_cap_is_stated(quick_result: Callable[[str], DemoResult]) -> None:
    result = quick_result("coroutines-vs-threads")
    assert_structure(result, "coroutines-vs-threads")
    rows = rows_by(result, "kind", "units")
    assert rows[("coroutines", 100_000)]["created"] == 100_000 or "stopped" in str(
        rows[("coroutines", 100_000)]["status"]
    )
    assert str(rows[("threads", 10_000)]["status"]).startswith("not run: quick mode caps")
    assert any("quick mode caps threads" in note for note in result.notes)


def test_coroutines_use_less_memory_per_unit(quick_result: Callable[[str], DemoResult]) -> None:
    rows = rows_by(quick_result("coroutines-vs-threads"), "kind", "units")
    coroutine, thread = rows[("coroutines", 1_000)], rows[("threads", 1_000)]
    # memory held does not depend on how busy the machine is; creation time does (one
    # preemption of the 10 ms coroutine run would swamp it), so only memory is asserted
    assert num(coroutine, "kb_per_unit") < num(thread, "kb_per_unit")
