"""Every table the report writes, from a real run, has a header for each of its columns."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console

from poollab.measure.bench.report import write_report
from poollab.measure.bench.table import summary_tables
from tests.measure.bench.conftest import SmallRun

# a Markdown cell boundary: a pipe the renderer did not escape
PIPE = re.compile(r"(?<!\\)\|")


@pytest.fixture(scope="module")
def written(small_run: SmallRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tables")
    write_report(small_run.results, out)
    return out


def markdown_tables(text: str) -> list[list[list[str]]]:
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            current.append([c.strip() for c in PIPE.split(line.strip())[1:-1]])
        elif current:
            tables.append(current)
            current = []
    return tables


class Tables(HTMLParser):
    """Each <table>'s rows, as the number of header and data cells in each."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[tuple[int, int]]] = []
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("th", "td") and self._row is not None:
            self._row.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self._row is not None:
            self.tables[-1].append((self._row.count("th"), self._row.count("td")))
            self._row = None


def test_every_markdown_table_row_has_as_many_cells_as_its_header(written: Path) -> None:
    tables = markdown_tables((written / "report.md").read_text())
    # a table per workload, the profiles' and the rest: the report has tables at all
    assert len(tables) >= 3
    for table in tables:
        header, rule, *rows = table
        assert all(set(cell) <= {"-", " "} for cell in rule), rule
        assert len(rule) == len(header) and all(header), header
        assert rows, header
        for row in rows:
            assert len(row) == len(header), (header, row)


def test_every_html_table_row_has_as_many_cells_as_its_header(written: Path) -> None:
    parser = Tables()
    parser.feed((written / "report.html").read_text())
    assert len(parser.tables) >= 3
    for table in parser.tables:
        (heads, no_data), *rows = table
        assert heads > 0 and no_data == 0
        assert rows
        assert all(r == (0, heads) for r in rows), (heads, rows)


def test_the_summary_tables_fill_every_column(small_run: SmallRun) -> None:
    tables = summary_tables(small_run.results)
    assert tables
    for table in tables:
        assert all(column.header for column in table.columns)
        cells = [list(column.cells) for column in table.columns]
        assert len({len(c) for c in cells}) == 1 and cells[0], table.title
    Console(width=200, record=True).print(*tables)


def test_the_cell_tables_show_how_each_consumer_ran_and_its_steady_state(
    written: Path, small_run: SmallRun
) -> None:
    markdown = (written / "report.md").read_text()
    tables = [t for t in markdown_tables(markdown) if "ran as" in t[0]]
    assert len(tables) == len({c.workload for c in small_run.results.cells})
    for header, _, *rows in tables:
        ran_as = {row[0]: row[header.index("ran as")] for row in rows}
        assert ran_as["prefork"] == "2 processes"
        assert ran_as["threads"] == "8 threads in one process (one GIL)"
        assert ran_as["solo"] == "one thread"
        # the small run's fixed 40 jobs never run --cell-s of steady state: each says so
        assert all(row[header.index("steady s")].endswith("short") for row in rows)
