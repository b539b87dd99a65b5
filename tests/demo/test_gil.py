from __future__ import annotations

from collections.abc import Callable

from poollab.demo.result import DemoResult

from .conftest import assert_structure, num, rows_by


def test_structure(quick_result: Callable[[str], DemoResult]) -> None:
    result = quick_result("gil")
    assert_structure(result, "gil")
    assert set(rows_by(result, "kind", "workers")) == {
        (kind, workers) for kind in ("threads", "processes") for workers in (1, 2, 4)
    }


def test_threads_give_no_speed_up_on_cpu_work(quick_result: Callable[[str], DemoResult]) -> None:
    rows = rows_by(quick_result("gil"), "kind", "workers")
    one = num(rows[("threads", 1)], "seconds")
    for workers in (2, 4):
        row = rows[("threads", workers)]
        # CPU time is immune to waiting for the CPU: with the GIL, threads keep about one
        # core busy however loaded the machine is
        assert num(row, "cores_used") < 1.4
        # wall time is not immune: other load can hit the 1-thread run harder than this one,
        # so only an absurd speed-up (beyond what two cores could give) counts as a failure
        assert num(row, "seconds") > one / 2.5
