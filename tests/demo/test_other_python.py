from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from poollab.demo import other_python, scaling
from poollab.demo.context import DemoContext
from poollab.demo.interpreters import Interpreter
from poollab.demo.result import DemoResult, Verdict


def _answer(serial_cores: float, interpreters_speedup: float) -> dict[str, Any]:
    rows = [
        {"kind": "serial", "workers": 1, "seconds": 1.0, "speedup": 1.0},
        {"kind": "threads", "workers": 2, "seconds": 1.0, "speedup": 1.0, "cores_used": 1.0},
        {"kind": "interpreters", "workers": 2, "speedup": interpreters_speedup},
    ]
    rows[0]["cores_used"] = serial_cores
    rows[2]["seconds"] = 1 / interpreters_speedup
    return {
        "rows": rows,
        "python": {
            "implementation": "CPython",
            "version": "3.14.8",
            "sys_version": "3.14.8",
            "gil_disabled_build": False,
            "gil_enabled": True,
        },
        "start_ms": {"threads": 1.0, "interpreters": 30.0},
        "iterations_per_call": 1000,
        "calls": 16,
    }


def _judge(tmp_path: Path, answer: dict[str, Any]) -> Any:
    ctx = DemoContext(quick=True, out_dir=tmp_path, charts=False)
    chosen = (Interpreter(Path(sys.executable)), "test")
    return other_python.judged(ctx, ("x", "claim", "talk"), chosen, answer, "interpreters")


@pytest.fixture(autouse=True)
def two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scaling, "usable_workers", lambda: (2, 2))


def test_the_rule_at_its_threshold(tmp_path: Path) -> None:
    assert _judge(tmp_path, _answer(0.98, 1.40)).verdict is Verdict.HELD
    failed = _judge(tmp_path, _answer(0.98, 1.39))
    assert failed.verdict is Verdict.NOT_HELD and "1.39x" in failed.reason


def test_held_names_the_other_kinds(tmp_path: Path) -> None:
    result = _judge(tmp_path, _answer(0.98, 1.9))
    assert result.reason.endswith("; threads 1.00x")
    assert result.summary["interpreters_speedup_2"] == 1.9
    assert result.summary["python"] == "CPython 3.14.8, GIL build"


def test_starved_serial_calls_make_any_speedup_inconclusive(tmp_path: Path) -> None:
    result = _judge(tmp_path, _answer(0.32, 1.9))
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "serial calls got only 0.32 of a core" in result.reason
    assert _judge(tmp_path, _answer(0.8, 1.9)).verdict is Verdict.HELD


def rule_for(result: DemoResult, kind: str) -> Verdict:
    """The verdict judged() gives on a result's own rows: used by the experiments' tests."""
    rows = {row["kind"]: row for row in result.rows}
    if float(rows["serial"]["cores_used"] or 0) < other_python.SERIAL_CORE_SHARE:
        return Verdict.INCONCLUSIVE
    _, usable = scaling.usable_workers()
    gained = float(rows[kind]["speedup"] or 0)
    return Verdict.HELD if gained >= scaling.needed_speedup(usable) else Verdict.NOT_HELD
