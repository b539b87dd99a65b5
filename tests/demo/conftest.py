"""Each experiment runs once per test session in quick mode; the tests share its result."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from poollab.demo.background import BUSY_CORES
from poollab.demo.context import DemoContext
from poollab.demo.result import Cell, DemoResult, Row, Verdict
from poollab.demo.runner import run_one

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="session")
def quick_result(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], DemoResult]:
    out_dir = tmp_path_factory.mktemp("charts")
    cache: dict[str, DemoResult] = {}

    def get(name: str) -> DemoResult:
        if name not in cache:
            cache[name] = run_one(name, DemoContext(quick=True, out_dir=out_dir))
        return cache[name]

    return get


def assert_structure(result: DemoResult, name: str) -> None:
    """What every experiment's result must carry, whatever the machine measured."""
    assert result.name == name
    assert result.verdict is not Verdict.ERROR, result.reason + "\n" + "\n".join(result.notes)
    assert result.claim and result.talk and result.reason
    assert result.columns and result.rows
    for row in result.rows:
        assert set(row) <= set(result.columns), (set(row) - set(result.columns), result.columns)
    for section in result.sections:
        assert section.columns and section.rows
    assert result.quick is True
    # the runner timed the run and measured the other load (None only if it never did)
    assert isinstance(result.elapsed_s, float)
    assert isinstance(result.background_cores, float)
    # strict JSON: no NaN or Infinity may leak through
    json.dumps(result.to_json(), allow_nan=False)
    if result.verdict is Verdict.SKIPPED:
        assert result.chart is None
        assert str(result.rows[0]["status"]).startswith("skipped: ")
    else:
        assert result.chart is not None
        assert Path(result.chart).read_bytes().startswith(PNG_MAGIC)


def rows_by(result: DemoResult, *keys: str) -> dict[tuple[Cell, ...], Row]:
    return {tuple(row[k] for k in keys): row for row in result.rows}


def num(row: Row | dict[str, Cell], key: str) -> float:
    value = row[key]
    assert isinstance(value, int | float), (key, value)
    return float(value)


def busy(result: DemoResult) -> bool:
    """Whether other programs took enough CPU during the run to make a failed claim unfair."""
    assert isinstance(result.background_cores, float), result.background_cores
    return result.background_cores >= BUSY_CORES


def assert_held_unless_busy(result: DemoResult) -> None:
    """For claims whose figures a loaded machine can only spoil: held, or inconclusive when
    other programs kept the machine busy (never "did not hold" because the machine was slow)."""
    if result.verdict is Verdict.HELD:
        return
    assert result.verdict is Verdict.INCONCLUSIVE, (result.verdict, result.reason)
    assert busy(result), (result.background_cores, result.reason)


def assert_verdict_follows(result: DemoResult, rule: Verdict) -> None:
    """The reported verdict is what the rule gives on the result's own figures, made
    inconclusive (and only then) when the claim failed on a busy machine."""
    assert rule in (Verdict.HELD, Verdict.NOT_HELD), rule
    # background_cores is rounded to 2 places; the runner decided on the unrounded figure
    near_threshold = abs(float(result.background_cores or 0) - BUSY_CORES) < 0.01
    if rule is Verdict.NOT_HELD and near_threshold:
        assert result.verdict in (Verdict.NOT_HELD, Verdict.INCONCLUSIVE), result.reason
    elif rule is Verdict.NOT_HELD and busy(result):
        assert result.verdict is Verdict.INCONCLUSIVE, result.reason
    else:
        assert result.verdict is rule, (result.verdict, rule, result.reason)
