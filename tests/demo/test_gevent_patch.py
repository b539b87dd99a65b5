from __future__ import annotations

import socket
import sys
from collections.abc import Callable

from poollab.demo.gevent_patch import OVERLAP_DELAYS, SERIAL_SHARE, _verdict
from poollab.demo.result import DemoResult, Row, Verdict

from .conftest import assert_held_unless_busy, assert_structure, num


def test_structure(quick_result: Callable[[str], DemoResult]) -> None:
    result = quick_result("gevent-patch")
    assert_structure(result, "gevent-patch")
    assert [row["mode"] for row in result.rows] == ["unpatched", "patched"]
    assert all(row["ok"] == row["greenlets"] for row in result.rows)


def test_patching_makes_blocking_sockets_overlap(quick_result: Callable[[str], DemoResult]) -> None:
    result = quick_result("gevent-patch")
    unpatched, patched = result.rows
    assert unpatched["socket_patched"] is False and patched["socket_patched"] is True
    # unpatched greenlets block the thread in turn: a slow machine only makes that slower
    assert num(unpatched, "wall_s") >= SERIAL_SHARE * num(unpatched, "serial_s")
    # patched, all overlap within 3 server delays; a starved machine can spoil only that,
    # and then the verdict says inconclusive
    assert_held_unless_busy(result)


def test_this_process_is_never_patched(quick_result: Callable[[str], DemoResult]) -> None:
    result = quick_result("gevent-patch")
    assert result.summary["this_process_patched"] is False
    assert socket.socket.__module__ == "socket"
    monkey = sys.modules.get("gevent.monkey")
    assert monkey is None or not monkey.is_module_patched("socket")


def _rows(unpatched_s: float, patched_s: float, greenlets: int = 40) -> list[Row]:
    return [
        {"mode": m, "socket_patched": m == "patched", "greenlets": greenlets, "ok": greenlets}
        | {"wall_s": s}
        for m, s in (("unpatched", unpatched_s), ("patched", patched_s))
    ]


def test_rule_serial_sum_unpatched_and_a_few_delays_patched() -> None:
    assert (SERIAL_SHARE, OVERLAP_DELAYS) == (0.95, 3)
    assert _verdict(_rows(4.05, 0.13), 4.0, 0.1)[0] is Verdict.HELD
    # half the serial time patched would have passed "2x faster"; it is no overlap of 40
    verdict, reason = _verdict(_rows(4.05, 2.0), 4.0, 0.1)
    assert verdict is Verdict.NOT_HELD and "did not overlap" in reason
    assert _verdict(_rows(4.05, 0.31), 4.0, 0.1)[0] is Verdict.NOT_HELD
    verdict, reason = _verdict(_rows(3.7, 0.13), 4.0, 0.1)
    assert verdict is Verdict.NOT_HELD and "unpatched greenlets overlapped" in reason
    broken = _rows(4.05, 0.13)
    broken[1]["ok"] = 39
    assert _verdict(broken, 4.0, 0.1)[0] is Verdict.NOT_HELD
