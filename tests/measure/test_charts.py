from __future__ import annotations

from pathlib import Path

from poollab.demo import chart

from .conftest import PNG_MAGIC


def test_every_helper_draws_into_a_png(tmp_path: Path) -> None:
    fig, axes = chart.new_figure(4)
    chart.bars(axes[0], ["a", "b"], [1.0, 250.0], title="t", ylabel="ms", log=True)
    chart.grouped_bars(axes[1], ["1", "2"], {"x": [1, 2], "y": [2, 1]}, title="t", ylabel="x")
    chart.lines(axes[2], [1, 10], {"s": [1.0, 2.0]}, title="t", xlabel="n", ylabel="ms", logx=True)
    chart.timeline(axes[3], [("long", 0.0, 1.0), ("short", 0.0, 0.2)], title="t")
    path = chart.save(fig, tmp_path / "sub" / "c.png", "title")
    assert path is not None and Path(path).read_bytes().startswith(PNG_MAGIC)


def test_no_path_means_no_chart() -> None:
    fig, _ = chart.new_figure()
    assert chart.save(fig, None, "title") is None
