from __future__ import annotations

import multiprocessing
from collections.abc import Callable

import pytest

from poollab.demo import start_methods_child
from poollab.demo.result import DemoResult

from .conftest import assert_structure


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
    with_heap = {row["method"]: row for row in result.rows if float(row["parent_heap_mb"] or 0)}
    fork = with_heap["fork"]
    heap = float(fork["parent_heap_mb"] or 0)
    assert fork["inherited"] is True
    assert with_heap["spawn"]["inherited"] is False
    # copy-on-write: shared until read, then the refcount writes copy (most of) every page
    assert float(fork["child_uss_mb"] or 0) < heap / 2
    assert float(fork["uss_after_read_mb"] or 0) > float(fork["child_uss_mb"] or 0) + heap / 3
