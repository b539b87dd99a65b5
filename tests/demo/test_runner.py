from __future__ import annotations

from pathlib import Path

import pytest

from poollab.demo import registry, runner
from poollab.demo.context import DemoContext
from poollab.demo.report import Report
from poollab.demo.result import DemoResult, Verdict


def _boom(ctx: DemoContext) -> DemoResult:
    raise RuntimeError("broken on purpose")


def test_a_crash_becomes_an_error_result(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(registry.Entry, "load", lambda self: _boom)
    result = runner.run_one("sleep", DemoContext(quick=True, out_dir=tmp_path))
    assert result.verdict is Verdict.ERROR
    assert "broken on purpose" in result.reason
    assert Report.exit_code([result]) == 1


def test_unknown_name_is_a_key_error(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        runner.run_one("nope", DemoContext(quick=True, out_dir=tmp_path))


def test_every_registered_experiment_loads() -> None:
    for entry in registry.ENTRIES:
        assert callable(entry.load())


def _failed() -> DemoResult:
    return DemoResult("x", "claim", "talk", ["a"], [{"a": 1}], Verdict.NOT_HELD, "slow")


def test_a_failure_on_a_busy_machine_is_inconclusive() -> None:
    result = _failed()
    result.background_cores = 1.5
    judged = runner.judge_fairness(result, busy=True, cpu_count=2)
    assert judged.verdict is Verdict.INCONCLUSIVE
    assert "1.5 of 2 cores" in judged.reason and judged.reason.startswith("slow")


def test_a_failure_on_a_quiet_machine_stands() -> None:
    assert runner.judge_fairness(_failed(), busy=False, cpu_count=2).verdict is Verdict.NOT_HELD


def test_results_record_the_background_load(tmp_path: Path) -> None:
    result = runner.run_one("free-threading", DemoContext(quick=True, out_dir=tmp_path))
    # always measured and recorded, even for an experiment that only says it is skipped
    assert isinstance(result.background_cores, float)
    assert result.verdict is not Verdict.ERROR
