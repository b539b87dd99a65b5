from __future__ import annotations

import time
from collections.abc import Callable

from poollab.demo.result import DemoResult, Row, Verdict
from poollab.demo.selectors_demo import (
    METHODS,
    OVERLAP_DELAYS,
    SERIAL_SHARE,
    _verdict,
    selector_loop,
)
from poollab.demo.slow_clients import REQUEST
from poollab.demo.slow_server import SlowEchoServer

from .conftest import assert_held_unless_busy, assert_structure, num, rows_by


def test_structure(quick_result: Callable[[str], DemoResult]) -> None:
    result = quick_result("selectors")
    assert_structure(result, "selectors")
    assert [row["method"] for row in result.rows] == list(METHODS)
    assert all(row["ok"] == row["requests"] for row in result.rows)
    assert str(result.summary["nonblocking_recv_without_data"]).startswith("BlockingIOError")


def test_one_thread_serves_them_all_far_faster_than_one_after_another(
    quick_result: Callable[[str], DemoResult],
) -> None:
    result = quick_result("selectors")
    by_method = rows_by(result, "method")
    serial, threaded, selector, in_asyncio = (by_method[(m,)] for m in METHODS)
    delay = num(serial, "server_delay_ms") / 1000
    count = num(serial, "requests")
    # one after another cannot beat N delays, however fast or slow the machine
    assert num(serial, "wall_s") >= SERIAL_SHARE * count * delay
    assert selector["threads"] == 1 and in_asyncio["threads"] == 1
    assert threaded["threads"] == count
    # a quarter of the serial time even on a starved machine: all N wait at once
    assert num(selector, "wall_s") < num(serial, "wall_s") / 4
    assert_held_unless_busy(result)


def test_the_hand_written_loop_answers_every_request_on_its_own() -> None:
    with SlowEchoServer(0.2) as server:
        start = time.perf_counter()
        answers = selector_loop(server.port, 10, time.monotonic() + 10)
        wall = time.perf_counter() - start
    assert [answer for answer, _ in answers] == [REQUEST] * 10
    # ten 0.2 s waits at once: far less than the 2 s they take in turn
    assert wall < 1.0, wall


def _rows(serial_s: float, threads_s: float, selector_s: float, asyncio_s: float) -> list[Row]:
    walls = (serial_s, threads_s, selector_s, asyncio_s)
    threads = (1, 20, 1, 1)
    return [
        {"method": m, "threads": t, "requests": 20, "ok": 20, "wall_s": w}
        for m, t, w in zip(METHODS, threads, walls, strict=True)
    ]


def test_rule_serial_n_delays_the_others_a_few_delays_on_one_thread() -> None:
    assert (OVERLAP_DELAYS, SERIAL_SHARE) == (3, 0.95)
    assert _verdict(_rows(2.02, 0.13, 0.12, 0.14), 20, 0.1)[0] is Verdict.HELD
    verdict, reason = _verdict(_rows(2.02, 0.13, 0.31, 0.14), 20, 0.1)
    assert verdict is Verdict.NOT_HELD and "selector loop took 0.31 s" in reason
    verdict, reason = _verdict(_rows(1.5, 0.13, 0.12, 0.14), 20, 0.1)
    assert verdict is Verdict.NOT_HELD and "one after another took 1.5 s" in reason
    two_threads = _rows(2.02, 0.13, 0.12, 0.14)
    two_threads[3]["threads"] = 2
    verdict, reason = _verdict(two_threads, 20, 0.1)
    assert verdict is Verdict.NOT_HELD and "asyncio ran on 2 threads" in reason
    lost = _rows(2.02, 0.13, 0.12, 0.14)
    lost[2]["ok"] = 19
    assert "not every request" in _verdict(lost, 20, 0.1)[1]
