from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from poollab.demo.anyio_demo import BACKENDS, BEATING_SHARE, BLOCKED_SHARE, OVERLAP_SHARE, _verdict
from poollab.demo.anyio_program import Sizes, program
from poollab.demo.result import DemoResult, Row, Verdict

from .conftest import assert_held_unless_busy, assert_structure, num


def test_structure(quick_result: Callable[[str], DemoResult]) -> None:
    result = quick_result("anyio")
    assert_structure(result, "anyio")
    assert [row["backend"] for row in result.rows] == list(BACKENDS)
    (reads,) = result.sections
    assert len(reads.rows) == 2


def test_the_same_program_computes_the_same_on_every_backend(
    quick_result: Callable[[str], DemoResult],
) -> None:
    result = quick_result("anyio")
    # results do not depend on the machine's speed: every sleeper, round trip and byte
    assert all(row["same_results"] is True for row in result.rows)
    for row in result.rows:
        assert num(row, "cpu_s") > 0 and num(row, "wall_s") >= num(row, "sleep_s")


def test_blocking_reads_stall_the_loop_and_async_reads_do_not(
    quick_result: Callable[[str], DemoResult],
) -> None:
    blocking, async_reads = quick_result("anyio").sections[0].rows
    # the heartbeat cannot run while one coroutine reads every file in turn
    assert num(blocking, "lag_max_ms") >= BLOCKED_SHARE * num(blocking, "wall_s") * 1000
    assert blocking["mib"] == async_reads["mib"]
    assert_held_unless_busy(quick_result("anyio"))


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_the_program_runs_unchanged_on_each_backend(backend: str, tmp_path: Path) -> None:
    files = []
    for index in range(3):
        files.append(tmp_path / f"{index}.bin")
        files[-1].write_bytes(bytes([index]) * 1000)
    sizes = Sizes(sleepers=50, sleep_s=0.02, clients=3, round_trips=10, files=files)
    name, options = BACKENDS[backend]
    outcome = anyio.run(program, sizes, backend=name, backend_options=options)
    assert (outcome.slept, outcome.echoed) == (50, 30)
    # 50 sleepers of 20 ms overlap: far less than the second they would take in turn
    assert outcome.sleep_s < 0.5
    reference = anyio.run(program, sizes, backend="asyncio")
    assert outcome.digest == reference.digest


def _rows(same: bool = True, sleep_s: float = 0.06) -> list[Row]:
    return [
        {"backend": b, "same_results": same, "sleep_s": sleep_s, "wall_s": 0.3} for b in BACKENDS
    ]


def _reads(blocked_lag_ms: float, async_lag_ms: float) -> list[Row]:
    return [
        {"reads": "blocking", "wall_s": 0.05, "lag_max_ms": blocked_lag_ms},
        {"reads": "async", "wall_s": 0.08, "lag_max_ms": async_lag_ms},
    ]


def test_rule_same_results_overlapping_sleepers_and_the_lag_shares() -> None:
    assert (BLOCKED_SHARE, BEATING_SHARE, OVERLAP_SHARE) == (0.8, 0.5, 0.1)
    sizes = Sizes(sleepers=200, sleep_s=0.05, clients=1, round_trips=1, files=[])
    assert _verdict(_rows(), _reads(50.0, 5.0), sizes)[0] is Verdict.HELD
    verdict, reason = _verdict(_rows(same=False), _reads(50.0, 5.0), sizes)
    assert verdict is Verdict.NOT_HELD and "computed something else" in reason
    # 200 sleepers of 50 ms: 10 s in turn, so over 1 s is no overlap (0.2 s is)
    assert _verdict(_rows(sleep_s=0.2), _reads(50.0, 5.0), sizes)[0] is Verdict.HELD
    assert (
        "more than 10% of their 10 s" in _verdict(_rows(sleep_s=1.1), _reads(50.0, 5.0), sizes)[1]
    )
    assert "blocking reads" in _verdict(_rows(), _reads(30.0, 5.0), sizes)[1]
    assert "async reads" in _verdict(_rows(), _reads(50.0, 40.0), sizes)[1]
