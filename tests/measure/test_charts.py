from __future__ import annotations

import math
from pathlib import Path

from poollab.measure import charts

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_every_helper_draws_into_a_png(tmp_path: Path) -> None:
    fig, axes = charts.new_figure(4)
    charts.bars(axes[0], ["a", "b"], [1.0, 250.0], title="t", ylabel="ms", log=True)
    charts.grouped_bars(
        axes[1], ["1", "2"], {"x": [1, 2], "y": [2, math.nan]}, colors=["red", "blue"],
        shades=(1.0, 0.5),
    )  # fmt: skip
    charts.lines(axes[2], [1, 10], {"s": [1.0, 2.0]}, title="t", xlabel="n", logx=True)
    charts.timeline(axes[3], [("long", 0.0, 1.0), ("short", 0.0, 0.2)], title="t")
    path = charts.save(fig, tmp_path / "sub" / "c.png", "title")
    assert path is not None and Path(path).read_bytes().startswith(PNG_MAGIC)


def test_a_missing_figure_is_an_empty_bar_labelled_as_missing() -> None:
    _, (ax,) = charts.new_figure()
    charts.bars(ax, ["measured", "missing"], [3.0, math.nan])
    assert [bar.get_height() for bar in ax.patches] == [3.0, 0.0]
    assert [text.get_text() for text in ax.texts] == ["3.0", "–"]


def test_no_path_means_no_chart() -> None:
    fig, _ = charts.new_figure()
    assert charts.save(fig, None, "title") is None
