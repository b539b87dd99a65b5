"""Results as rich tables: the measured rows, the headline figures and the verdict."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table
from rich.text import Text

from poollab.demo.result import Cell, DemoResult, Row, Verdict
from poollab.measure.table import MISSING, rich_table

_VERDICT_STYLE = {
    Verdict.HELD: "bold green",
    Verdict.NOT_HELD: "bold red",
    Verdict.SKIPPED: "bold yellow",
    Verdict.INCONCLUSIVE: "bold yellow",
    Verdict.ERROR: "bold magenta",
}


def format_cell(value: Cell) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return _format_float(value)
    return value


def _format_float(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.1 or magnitude == 0:
        return f"{value:.2f}"
    return f"{value:.3g}"


def build_table(title: str, columns: list[str], rows: list[Row], caption: str | None) -> Table:
    return rich_table(
        title,
        columns,
        ([format_cell(row.get(column)) for column in columns] for row in rows),
        text_columns=_TEXT_COLUMNS,
        caption=caption,
    )


# columns that hold labels rather than figures read better left-aligned
_TEXT_COLUMNS = {
    "status",
    "config",
    "method",
    "kind",
    "loop",
    "mode",
    "sleeper",
    "workload",
    "fastest",
}


def print_result(result: DemoResult, console: Console) -> None:
    console.print(
        build_table(f"poollab demo {result.name}", result.columns, result.rows, result.claim)
    )
    for section in result.sections:
        console.print(build_table(section.title, section.columns, section.rows, None))
    if result.summary:
        figures = ", ".join(
            f"{key} = {format_cell(value)}" for key, value in result.summary.items()
        )
        console.print(f"[bold]measured:[/bold] {figures}")
    console.print(f"[bold]talk:[/bold] {result.talk}")
    verdict = Text(result.verdict.value, style=_VERDICT_STYLE[result.verdict])
    console.print(Text.assemble(("verdict: ", "bold"), verdict, f" ({result.reason})"))
    for note in result.notes:
        console.print(f"[dim]note: {note}[/dim]")
    if result.chart:
        console.print(f"chart: {result.chart}")
    if result.background_cores is not None:
        console.print(
            f"[dim]other programs kept {result.background_cores:.2f} cores busy meanwhile[/dim]"
        )
    console.print(f"[dim]{result.elapsed_s:.1f} s[/dim]\n")
