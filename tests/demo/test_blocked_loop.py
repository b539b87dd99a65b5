from __future__ import annotations

from collections.abc import Callable

from poollab.demo.blocked_loop import (
    OFFLOADED_P99_MS,
    SWITCH_INTERVALS_MS,
    _verdict,
)
from poollab.demo.heartbeat import TICK_S
from poollab.demo.result import DemoResult, Row, Verdict

from .conftest import assert_held_unless_busy, assert_structure, num


def test_structure(quick_result: Callable[[str], DemoResult]) -> None:
    result = quick_result("blocked-loop")
    assert_structure(result, "blocked-loop")
    kinds = {(row["block"], row["how"]) for row in result.rows}
    for block in ("time.sleep", "socket recv", "cpu burst"):
        assert (block, "inline") in kinds and (block, "asyncio.to_thread") in kinds
    assert ("cpu burst", "process pool") in kinds and ("asyncio.sleep", "await") in kinds
    (consumer,) = result.sections
    assert [row["cpu_executor"] for row in consumer.rows] == ["inline", "thread", "process"]


def test_an_inline_blocking_call_stops_the_loop_for_at_least_its_duration(
    quick_result: Callable[[str], DemoResult],
) -> None:
    result = quick_result("blocked-loop")
    for row in result.rows:
        if row["how"] == "inline":
            # the heartbeat cannot run until the call returns: a slow machine only adds to it
            assert num(row, "lag_max_ms") >= num(row, "block_ms") - TICK_S * 1000, row
        assert num(row, "beats") >= 1


def test_the_real_consumer_reports_its_lag_inline_at_least_a_job(
    quick_result: Callable[[str], DemoResult],
) -> None:
    result = quick_result("blocked-loop")
    rows = {row["cpu_executor"]: row for row in result.sections[0].rows}
    for row in rows.values():
        assert row["samples"] and num(row, "lag_max_ms") >= 0
    # a job run inline blocks the consumer's loop for the whole job
    assert num(rows["inline"], "lag_max_ms") >= 0.9 * num(rows["inline"], "job_run_ms")
    assert_held_unless_busy(result)


def _row(block: str, how: str, p50: float, p99: float, top: float, switch: float = 5.0) -> Row:
    figures: Row = {"lag_p50_ms": p50, "lag_p99_ms": p99, "lag_max_ms": top, "block_ms": 100}
    return {"block": block, "how": how, "switch_ms": switch, **figures}


def _held_rows() -> list[Row]:
    return [
        _row("asyncio.sleep", "await", 0.2, 1.0, 1.5),
        _row("time.sleep", "inline", 0.2, 300.0, 600.0),
        _row("time.sleep", "asyncio.to_thread", 0.2, 2.0, 3.0),
        _row("cpu burst", "asyncio.to_thread", 4.9, 9.0, 20.0, SWITCH_INTERVALS_MS[0]),
        _row("cpu burst", "asyncio.to_thread", 19.0, 30.0, 60.0, SWITCH_INTERVALS_MS[1]),
        _row("cpu burst", "process pool", 0.2, 3.0, 4.0),
    ]


def _consumer(inline: float, process: float) -> list[Row]:
    return [
        {"cpu_executor": "inline", "job_run_ms": 100.0, "lag_max_ms": inline},
        {"cpu_executor": "thread", "job_run_ms": 300.0, "lag_max_ms": 6.0},
        {"cpu_executor": "process", "job_run_ms": 300.0, "lag_max_ms": process},
    ]


def test_rule_inline_lag_at_least_the_call_offloaded_p99_small_gil_grows() -> None:
    assert OFFLOADED_P99_MS == 20.0
    assert _verdict(_held_rows(), _consumer(200.0, 5.0), 0.1)[0] is Verdict.HELD
    short = _held_rows()
    short[1]["lag_max_ms"] = 90.0  # below 100 ms less a 5 ms tick
    verdict, reason = _verdict(short, _consumer(200.0, 5.0), 0.1)
    assert verdict is Verdict.NOT_HELD and "time.sleep inline: max lag 90.0 ms" in reason
    laggy = _held_rows()
    laggy[2]["lag_p99_ms"] = 25.0
    assert "p99 lag 25.0 ms" in _verdict(laggy, _consumer(200.0, 5.0), 0.1)[1]
    flat = _held_rows()
    flat[4]["lag_p50_ms"] = 4.0
    assert "cpu in a thread" in _verdict(flat, _consumer(200.0, 5.0), 0.1)[1]
    verdict, reason = _verdict(_held_rows(), _consumer(50.0, 5.0), 0.1)
    assert verdict is Verdict.NOT_HELD and "consumer inline" in reason
    verdict, reason = _verdict(_held_rows(), _consumer(200.0, 160.0), 0.1)
    assert verdict is Verdict.NOT_HELD and "consumer process" in reason
