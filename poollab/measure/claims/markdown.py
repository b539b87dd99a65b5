"""Markdown for the generated blocks: tables of cells, formatted as the demos print them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from poollab.demo.result import Cell, Row
from poollab.demo.table import format_cell


def cell(value: Cell) -> str:
    # a pipe inside a cell would end it
    return format_cell(value).replace("|", "\\|")


def table(columns: Sequence[str], rows: Iterable[Row]) -> str:
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def machine_line(
    command: str, recorded: str, cpu_count: int, busy_cores: float | None, extra: str = ""
) -> str:
    parts = [f"`{command}`"]
    if recorded:
        parts.append(recorded)
    if cpu_count:
        parts.append(f"{cpu_count} cores")
    if busy_cores is not None:
        parts.append(f"other programs kept {busy_cores:.2f} cores busy")
    if extra:
        parts.append(extra)
    return ", ".join(parts)
