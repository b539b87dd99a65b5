from __future__ import annotations

import multiprocessing
from collections.abc import Callable

import pytest

from poollab.demo import start_methods_child
from poollab.demo.result import DemoResult, Row, Verdict
from poollab.demo.start_methods import COPIED_SHARE, FORK_FASTER, SHARED_SHARE, _verdict

from .conftest import assert_held_unless_busy, assert_structure, num


@pytest.fixture
def result(quick_result: Callable[[str], DemoResult]) -> DemoResult:
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("fork is POSIX only")
    return quick_result("start-methods")


def test_structure(result: DemoResult) -> None:
    assert_structure(result, "start-methods")
    methods = {row["method"] for row in result.rows}
    assert {"fork", "spawn"} <= methods
    assert start_methods_child.HEAP is None, "the parent's heap must be released afterwards"


def test_only_fork_inherits_the_heap_and_reading_it_copies_pages(result: DemoResult) -> None:
    with_heap = {row["method"]: row for row in result.rows if num(row, "parent_heap_mb")}
    fork = with_heap["fork"]
    heap = num(fork, "parent_heap_mb")
    assert heap > 0
    assert fork["inherited"] is True
    assert all(row["inherited"] is False for method, row in with_heap.items() if method != "fork")
    # memory does not depend on the load: the claim's shares, asserted as they are.
    # copy-on-write: shared until read (under 10% owned), then the refcount writes copy pages
    assert num(fork, "child_uss_mb") < SHARED_SHARE * heap
    assert num(fork, "uss_after_read_mb") - num(fork, "child_uss_mb") >= COPIED_SHARE * heap


def test_verdict(result: DemoResult) -> None:
    # start times do depend on the load: held, or inconclusive when the machine was busy
    assert_held_unless_busy(result)


def _row(method: str, heap: float, start: float, **memory: float | bool) -> Row:
    row: Row = {"method": method, "parent_heap_mb": heap, "start_ms": start}
    row |= {"inherited": heap > 0 and method == "fork", "child_uss_mb": 5.0}
    row |= {"uss_after_read_mb": 5.0}
    row.update(memory)
    return row


def _rows(fork_ms: float = 5.0, forkserver_ms: float = 15.0, spawn_ms: float = 75.0) -> list[Row]:
    return [
        _row("fork", 0, fork_ms),
        _row("forkserver", 0, forkserver_ms),
        _row("spawn", 0, spawn_ms),
        _row("fork", 254.0, 15.0, child_uss_mb=2.7, uss_after_read_mb=233.0),
        _row("forkserver", 254.0, 19.0),
        _row("spawn", 254.0, 74.0),
    ]


def test_rule_fork_fastest_by_a_margin() -> None:
    verdict, reason = _verdict(_rows())
    assert verdict is Verdict.HELD
    assert "15.0x faster than spawn and 3.0x faster than forkserver" in reason
    assert FORK_FASTER == 1.5
    verdict, reason = _verdict(_rows(forkserver_ms=7.0))
    assert verdict is Verdict.NOT_HELD and "forkserver" in reason
    assert _verdict(_rows(forkserver_ms=7.5))[0] is Verdict.HELD
    assert _verdict(_rows(spawn_ms=6.0))[0] is Verdict.NOT_HELD


def test_rule_shared_then_copied_and_nothing_inherited_elsewhere() -> None:
    rows = _rows()
    rows[3]["child_uss_mb"] = 30.0  # 12% of the heap owned before reading: not shared
    assert _verdict(rows)[0] is Verdict.NOT_HELD
    rows = _rows()
    rows[3]["uss_after_read_mb"] = 120.0  # under half the heap copied
    assert _verdict(rows)[0] is Verdict.NOT_HELD
    rows = _rows()
    rows[5]["inherited"] = True
    verdict, reason = _verdict(rows)
    assert verdict is Verdict.NOT_HELD and "spawn child saw" in reason
    assert _verdict(_rows()[1:])[0] is Verdict.SKIPPED
