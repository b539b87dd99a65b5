from __future__ import annotations

import socket
import sys
from collections.abc import Callable

from poollab.demo.result import DemoResult

from .conftest import assert_structure


def test_structure(quick_result: Callable[[str], DemoResult]) -> None:
    result = quick_result("gevent-patch")
    assert_structure(result, "gevent-patch")
    assert [row["mode"] for row in result.rows] == ["unpatched", "patched"]
    assert all(row["ok"] == row["greenlets"] for row in result.rows)


def test_patching_makes_blocking_sockets_overlap(quick_result: Callable[[str], DemoResult]) -> None:
    unpatched, patched = quick_result("gevent-patch").rows
    assert unpatched["socket_patched"] is False and patched["socket_patched"] is True
    # unpatched greenlets block the thread in turn: never faster than the serial sum
    assert float(unpatched["wall_s"] or 0) >= 0.9 * float(unpatched["serial_s"] or 0)
    assert float(patched["wall_s"] or 0) < float(unpatched["wall_s"] or 0) / 2


def test_this_process_is_never_patched(quick_result: Callable[[str], DemoResult]) -> None:
    result = quick_result("gevent-patch")
    assert result.summary["this_process_patched"] is False
    assert socket.socket.__module__ == "socket"
    monkey = sys.modules.get("gevent.monkey")
    assert monkey is None or not monkey.is_module_patched("socket")
