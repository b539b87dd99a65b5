from __future__ import annotations

import shutil
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from poollab.demo import free_threading, interpreters, scaling
from poollab.demo.context import DemoContext
from poollab.demo.interpreters import Interpreter
from poollab.demo.result import DemoResult, Verdict

from .conftest import assert_structure, num, rows_by
from .test_other_python import rule_for


def _free_threaded_around() -> bool:
    here = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    return here or any(shutil.which(name) for name in interpreters.FREE_THREADED_NAMES)


def test_runs_or_says_how_to_get_a_free_threaded_build(
    quick_result: Callable[[str], DemoResult],
) -> None:
    result = quick_result("free-threading")
    assert_structure(result, "free-threading")
    if _free_threaded_around():
        pytest.skip("a free-threaded python is here: the skip path cannot be seen")
    assert result.verdict is Verdict.SKIPPED
    status = str(result.rows[0]["status"])
    assert "3.13t / 3.14t" in status and "uv python install 3.14t" in status
    assert "--python PATH" in status


def test_a_gil_build_given_is_refused_with_the_way_to_a_free_threaded_one(tmp_path: Path) -> None:
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        pytest.skip("this is a free-threaded build")
    ctx = DemoContext(quick=True, out_dir=tmp_path, python=sys.executable)
    result = free_threading.run(ctx)
    assert result.verdict is Verdict.SKIPPED
    status = str(result.rows[0]["status"])
    assert "GIL build, not a free-threaded build" in status and "python.org" in status


def test_measuring_path_on_a_build_said_to_be_free_threaded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # unit level: this GIL build claims to run without the GIL, so the measuring and judging
    # code runs as it would on 3.14t (the threads themselves cannot speed up here)
    real = Interpreter.describe

    def free(self: Interpreter) -> dict[str, Any]:
        return {**real(self), "gil_disabled_build": True, "gil_enabled": False}

    monkeypatch.setattr(Interpreter, "describe", free)
    result = free_threading.run(DemoContext(quick=True, out_dir=tmp_path, python=sys.executable))
    rows = rows_by(result, "kind")
    assert set(rows) == {("serial",), ("threads",), ("processes",)}
    assert num(rows[("threads",)], "workers") == scaling.usable_workers()[1]
    # judged by the rule on its own rows (the runner's fairness check does not run here)
    assert result.verdict is rule_for(result, "threads") and "threads" in result.reason
    assert result.chart is not None and Path(result.chart).exists()
