from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from poollab.demo import free_threading
from poollab.demo.context import DemoContext
from poollab.demo.result import DemoResult, Verdict

from .conftest import assert_structure


def _gil_off() -> bool:
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return is_enabled is not None and not is_enabled()


def test_runs_or_says_what_it_needs(quick_result: Callable[[str], DemoResult]) -> None:
    result = quick_result("free-threading")
    assert_structure(result, "free-threading")
    if _gil_off():
        assert result.verdict is not Verdict.SKIPPED
    else:
        assert result.verdict is Verdict.SKIPPED
        assert str(result.rows[0]["status"]).startswith("skipped: ")
        assert "3.13t" in str(result.rows[0]["status"])


def test_measuring_path_runs_when_the_gil_is_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # on a GIL build the threads cannot speed up, but the code path is the same as on 3.13t
    monkeypatch.setattr(free_threading, "free_threading_missing", lambda: None)
    monkeypatch.setattr(free_threading.scaling, "spin_size", lambda ctx, full_serial_s: 2_000)
    result = free_threading.run(DemoContext(quick=True, out_dir=tmp_path))
    assert [row["workers"] for row in result.rows] == [1, 2, 4]
    # judged by the rule (not by the runner, which alone can call a result inconclusive)
    assert result.verdict in (Verdict.HELD, Verdict.NOT_HELD)
    assert "faster than 1" in result.reason
    assert result.chart is not None and Path(result.chart).exists()
