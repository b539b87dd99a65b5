"""The bench's progress on stderr: a bar over the cells with an estimate of the time left.

On a terminal, rich bars; in a log or a pipe, one line per cell instead.
"""

from __future__ import annotations

import statistics

from rich.console import Console
from rich.progress import TaskID, TextColumn

from poollab.measure.bench.results import BenchCell
from poollab.measure.progress import Bars


def fmt_duration(seconds: float) -> str:
    whole = max(round(seconds), 0)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class BenchProgress(Bars):
    """A bar over the cells, one over the current cell's jobs, and a line per cell."""

    def __init__(
        self, console: Console, cells: int, worker_starts: int, cell_s_guess: float
    ) -> None:
        super().__init__(console, TextColumn("{task.fields[eta]}"))
        self.cells_total = cells
        self.starts_total = worker_starts
        self.cell_times: list[float] = []
        self.start_times: list[float] = []
        self._cell_guess = cell_s_guess + 2.0
        self._start_guess = 4.0
        self._overall: TaskID | None = None
        self._jobs: TaskID | None = None

    def __enter__(self) -> BenchProgress:
        super().__enter__()
        self._overall = self.add("cells", self.cells_total, eta=self.eta())
        return self

    def eta(self) -> str:
        cell = statistics.fmean(self.cell_times) if self.cell_times else self._cell_guess
        start = statistics.fmean(self.start_times) if self.start_times else self._start_guess
        left_cells = self.cells_total - len(self.cell_times)
        left_starts = self.starts_total - len(self.start_times)
        return f"≈ {fmt_duration(left_cells * cell + left_starts * start)} left"

    def worker_started(self, seconds: float, description: str) -> None:
        self.start_times.append(seconds)
        self._refresh()
        self.console.print(f"[bold]{description}[/] ready in {seconds:.1f} s", soft_wrap=True)

    def cell_started(self, description: str, jobs: int) -> None:
        if self._jobs is not None:
            self.remove(self._jobs)
        self._jobs = self.add(description, jobs, eta="")

    def job_done(self) -> None:
        if self._jobs is not None:
            self.advance(self._jobs)

    def cell_done(self, seconds: float, cell: BenchCell) -> None:
        self.cell_times.append(seconds)
        if self._jobs is not None:
            self.remove(self._jobs)
            self._jobs = None
        if self._overall is not None:
            self.advance(self._overall)
        self._refresh()
        problems = ""
        if cell.failed or cell.lost:
            problems = f" [red]{cell.failed} failed, {cell.lost} lost[/]"
        p99 = cell.latency_ms.get("p99", 0.0)
        self.console.print(
            f"  {cell.workload:<6} {cell.mode:<5} {cell.jobs:>6} jobs "
            f"{cell.throughput_per_s:>9,.1f}/s  p99 {p99:>9,.1f} ms"
            f"  [dim]({len(self.cell_times)}/{self.cells_total}, {self.eta()})[/]{problems}",
            # one line per cell in a log, however narrow the console thinks it is
            soft_wrap=True,
        )

    def _refresh(self) -> None:
        if self._overall is not None:
            self.update(self._overall, eta=self.eta())
