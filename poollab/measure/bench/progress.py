"""The bench's progress on stderr: a bar over the cells with an estimate of the time left.

On a terminal, rich bars; in a log or a pipe, one line per cell instead.
"""

from __future__ import annotations

import statistics
import time
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


def fmt_duration(seconds: float) -> str:
    whole = max(round(seconds), 0)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class BenchProgress:
    def __init__(
        self, console: Console, cells: int, worker_starts: int, cell_s_guess: float
    ) -> None:
        self.console = console
        self.cells_total = cells
        self.starts_total = worker_starts
        self.cell_times: list[float] = []
        self.start_times: list[float] = []
        self._cell_guess = cell_s_guess + 2.0
        self._start_guess = 4.0
        self._live = console.is_terminal
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[eta]}"),
            console=console,
            transient=True,
            disable=not self._live,
        )
        self._overall: TaskID | None = None
        self._jobs: TaskID | None = None
        self._began = time.monotonic()

    def __enter__(self) -> BenchProgress:
        self._progress.start()
        self._overall = self._progress.add_task("cells", total=self.cells_total, eta=self.eta())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def eta(self) -> str:
        cell = statistics.fmean(self.cell_times) if self.cell_times else self._cell_guess
        start = statistics.fmean(self.start_times) if self.start_times else self._start_guess
        left_cells = self.cells_total - len(self.cell_times)
        left_starts = self.starts_total - len(self.start_times)
        return f"≈ {fmt_duration(left_cells * cell + left_starts * start)} left"

    def say(self, message: str) -> None:
        if self._live:
            self._progress.console.print(f"[dim]{message}[/]")

    def worker_started(self, seconds: float, description: str) -> None:
        self.start_times.append(seconds)
        self._refresh()
        self.console.print(f"[bold]{description}[/] ready in {seconds:.1f} s", soft_wrap=True)

    def cell_started(self, description: str, jobs: int) -> None:
        if self._jobs is not None:
            self._progress.remove_task(self._jobs)
        self._jobs = self._progress.add_task(description, total=jobs, eta="")

    def job_done(self) -> None:
        if self._jobs is not None:
            self._progress.advance(self._jobs)

    def cell_done(self, seconds: float, record: dict[str, Any]) -> None:
        self.cell_times.append(seconds)
        if self._jobs is not None:
            self._progress.remove_task(self._jobs)
            self._jobs = None
        if self._overall is not None:
            self._progress.advance(self._overall)
        self._refresh()
        problems = ""
        if record["failed"] or record["lost"]:
            problems = f" [red]{record['failed']} failed, {record['lost']} lost[/]"
        p99 = record["latency_ms"].get("p99", 0.0)
        self.console.print(
            f"  {record['workload']:<6} {record['mode']:<5} {record['jobs']:>6} jobs "
            f"{record['throughput_per_s']:>9,.1f}/s  p99 {p99:>9,.1f} ms"
            f"  [dim]({len(self.cell_times)}/{self.cells_total}, {self.eta()})[/]{problems}",
            # one line per cell in a log, however narrow the console thinks it is
            soft_wrap=True,
        )

    def _refresh(self) -> None:
        if self._overall is not None:
            self._progress.update(self._overall, eta=self.eta())
