from __future__ import annotations

import math

from rich.console import Console

from poollab.measure.table import MISSING, figure, measured, percent, rich_table


def test_a_figure_that_could_not_be_measured_reads_as_missing() -> None:
    assert figure(1234.56) == "1,234.6" and figure(3, ".0f") == "3"
    assert figure(None) == figure(math.nan) == figure("x") == MISSING
    assert percent(0.456) == "46%" and percent(None) == MISSING
    assert math.isnan(measured(True)) and measured(2) == 2.0


def test_label_columns_go_left_and_figures_right() -> None:
    table = rich_table("t", ["pool", "jobs/s"], [["solo", "12.0"]], text_columns={"pool"})
    assert [c.justify for c in table.columns] == ["left", "right"]
    console = Console(record=True, width=60)
    console.print(table)
    assert "solo" in console.export_text()
