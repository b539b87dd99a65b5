"""Each experiment runs once per test session in quick mode; the tests share its result."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

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
    assert result.elapsed_s >= 0
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
