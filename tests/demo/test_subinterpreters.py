from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from poollab.demo import interpreters, scaling, subinterpreters
from poollab.demo.context import DemoContext
from poollab.demo.result import DemoResult, Verdict
from poollab.demo.runtime import this_python

from .conftest import assert_structure, assert_verdict_follows, num, rows_by
from .test_other_python import rule_for


def _cached_or_skip() -> interpreters.Interpreter:
    cached = interpreters.cached_314()
    if cached is None:
        pytest.skip(
            f"no CPython 3.14 cached in {interpreters.forky_root()}: "
            "`poollab interpreters get 3.14` builds it (root, debootstrap, about 30 s)"
        )
    return cached


def test_runs_in_314_or_says_what_is_missing(quick_result: Callable[[str], DemoResult]) -> None:
    result = quick_result("subinterpreters")
    assert_structure(result, "subinterpreters")
    if sys.version_info < (3, 14) and interpreters.cached_314() is None:
        assert result.verdict is Verdict.SKIPPED
        status = str(result.rows[0]["status"])
        assert "`poollab interpreters get 3.14`" in status and "--python PATH" in status
        return
    assert str(result.summary["python"]).startswith("CPython 3.14")


def test_the_cached_314_measures_interpreters_against_threads_and_processes(
    quick_result: Callable[[str], DemoResult],
) -> None:
    cached = _cached_or_skip()
    result = quick_result("subinterpreters")
    if sys.version_info < (3, 14):
        assert result.summary["run_as"] == cached.label()
    rows = rows_by(result, "kind")
    assert set(rows) == {("serial",), ("threads",), ("interpreters",), ("processes",)}
    _, usable = scaling.usable_workers()
    assert all(num(rows[(k,)], "workers") == usable for k in ("threads", "interpreters"))
    # threads of one interpreter share its GIL: never near the cores, whatever the load
    assert num(rows[("threads",)], "cores_used") < 1.5
    gained = num(rows[("interpreters",)], "speedup")
    assert result.summary[f"interpreters_speedup_{usable}"] == gained
    rule = rule_for(result, "interpreters")
    if rule is Verdict.INCONCLUSIVE:
        assert result.verdict is rule and "serial calls got only" in result.reason
    else:
        assert_verdict_follows(result, rule)


def test_a_given_python_without_interpreter_pools_is_named(tmp_path: Path) -> None:
    if sys.version_info >= (3, 14):
        pytest.skip("this interpreter has InterpreterPoolExecutor")
    ctx = DemoContext(quick=True, out_dir=tmp_path, python=sys.executable)
    result = subinterpreters.run(ctx)
    assert result.verdict is Verdict.SKIPPED
    status = str(result.rows[0]["status"])
    assert sys.executable in status and "given with --python" in status
    assert "without concurrent.futures.InterpreterPoolExecutor" in status


def test_the_cached_314_given_by_path_runs_chrooted(tmp_path: Path) -> None:
    cached = _cached_or_skip()
    ctx = DemoContext(quick=True, out_dir=tmp_path, python=str(cached.path), charts=False)
    result = subinterpreters.run(ctx)
    assert result.summary["chosen"] == "given with --python"
    assert result.summary["run_as"] == cached.label()
    assert [row["kind"] for row in result.rows] == subinterpreters.KINDS


def test_on_a_fresh_machine_the_row_names_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if sys.version_info >= (3, 14):
        pytest.skip("this interpreter has InterpreterPoolExecutor")
    monkeypatch.setenv("POOLLAB_CACHE_DIR", str(tmp_path / "empty"))
    result = subinterpreters.run(DemoContext(quick=True, out_dir=tmp_path))
    assert result.verdict is Verdict.SKIPPED and result.chart is None
    assert result.rows[0]["status"] == (
        "skipped: needs CPython 3.14 (concurrent.futures.InterpreterPoolExecutor); this is "
        f"{this_python()}, and no CPython 3.14 is cached in {tmp_path / 'empty' / 'forky-py314'}: "
        "get one with `poollab interpreters get 3.14` (root and debootstrap, 30-100 s once) or "
        "give one with --python PATH"
    )
