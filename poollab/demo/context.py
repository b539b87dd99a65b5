"""What an experiment is given: quick or full mode, where charts go, where progress goes."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from matplotlib.axes import Axes

from poollab.measure import charts
from poollab.measure.progress import Advance

T = TypeVar("T")


class ProgressSink(Protocol):
    def task(self, description: str, total: float) -> contextlib.AbstractContextManager[Advance]:
        """A progress bar for one phase; the context yields a function that advances it."""
        ...


class NullProgress:
    @contextlib.contextmanager
    def task(self, description: str, total: float) -> Iterator[Advance]:
        yield lambda amount: None


@dataclass(frozen=True)
class DemoContext:
    quick: bool
    out_dir: Path
    progress: ProgressSink = field(default_factory=NullProgress)
    charts: bool = True
    # the Python the interpreter-dependent experiments run in: a path, or "auto" to find one
    python: str = "auto"

    def pick(self, quick: T, full: T) -> T:
        return quick if self.quick else full

    def draw_chart(
        self,
        name: str,
        title: str,
        draw: Callable[[list[Axes]], None],
        panels: int = 1,
        width_per_panel: float = 6.0,
    ) -> str | None:
        """Draw an experiment's chart on ``panels`` axes and save it; None with charts off."""
        path = self.chart_path(name)
        if path is None:
            return None
        fig, axes = charts.new_figure(panels, width_per_panel)
        draw(axes)
        return charts.save(fig, path, title)

    def chart_path(self, name: str) -> Path | None:
        if not self.charts:
            return None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return self.out_dir / f"{name}.png"
