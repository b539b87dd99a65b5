"""Tables and the figures in them, shared by the bench's summary and report and the demos."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence

from rich.table import Table

# what a figure that could not be measured (null in JSON, NaN in code) reads as
MISSING = "–"


def measured(value: object) -> float:
    """A figure as a float: NaN when it is missing (None) or not a number at all."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def figure(value: object, spec: str = ",.1f") -> str:
    """A figure in the given format, or "–" when it could not be measured."""
    number = measured(value)
    return format(number, spec) if math.isfinite(number) else MISSING


def percent(value: object) -> str:
    """A share (0.5) as a whole percentage (50%), or "–"."""
    number = measured(value)
    return f"{number * 100:.0f}%" if math.isfinite(number) else MISSING


def rich_table(
    title: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    text_columns: Collection[str] = (),
    caption: str | None = None,
) -> Table:
    """A table whose label columns are left-aligned and figure columns right-aligned."""
    table = Table(title=title, caption=caption, title_justify="left")
    for column in columns:
        table.add_column(column, justify="left" if column in text_columns else "right")
    for row in rows:
        table.add_row(*row)
    return table
