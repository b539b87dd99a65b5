from __future__ import annotations

import json

from rich.console import Console

from poollab.demo.result import DemoResult, Section, Verdict, skipped
from poollab.demo.table import format_cell, print_result


def _result() -> DemoResult:
    return DemoResult(
        name="x",
        claim="a claim",
        talk="the talk said",
        columns=["config", "ms"],
        rows=[{"config": "a", "ms": float("inf")}, {"config": "b", "ms": 1.5}],
        verdict=Verdict.HELD,
        reason="because",
        summary={"ratio": float("nan")},
        sections=[Section("more", ["n"], [{"n": 3}])],
        notes=["a note"],
    )


def test_to_json_is_strict_json_and_reads_back_exactly() -> None:
    data = _result().to_json()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text)["verdict"] == "held"
    assert data["rows"][0]["ms"] is None and data["summary"]["ratio"] is None
    assert data["sections"][0]["rows"] == [{"n": 3}]
    again = DemoResult.from_json(json.loads(text))
    assert again.verdict is Verdict.HELD and again.sections == [Section("more", ["n"], [{"n": 3}])]
    assert again.to_json() == data


def test_skipped_result_carries_its_status() -> None:
    result = skipped("y", "claim", "talk", "skipped: needs Python 3.13t")
    assert result.verdict is Verdict.SKIPPED
    assert result.rows == [{"status": "skipped: needs Python 3.13t"}]
    assert result.reason == "needs Python 3.13t"


def test_format_cell() -> None:
    assert format_cell(None) == "–"
    assert format_cell(True) == "yes"
    assert format_cell(12345) == "12,345"
    assert format_cell(1234.5) == "1,234"
    assert format_cell(0.000123) == "0.000123"
    assert format_cell("text") == "text"


def test_print_result_shows_table_verdict_and_notes() -> None:
    console = Console(record=True, width=120)
    print_result(_result(), console)
    text = console.export_text()
    assert "poollab demo x" in text and "more" in text
    assert "verdict: held (because)" in text and "note: a note" in text
