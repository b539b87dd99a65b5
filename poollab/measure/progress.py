"""Progress bars on a console (stderr), shared by the bench and the demos.

On a terminal they are rich bars that vanish when done; in a log or a pipe they would be
noise, so there they draw nothing and only what is printed through the console remains.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

# advances a bar by an amount
Advance = Callable[[float], None]


class Bars:
    """A set of bars on ``console``; ``extra_columns`` go after the elapsed time."""

    def __init__(self, console: Console | None = None, *extra_columns: ProgressColumn) -> None:
        self.console = console or Console(stderr=True)
        self.live = self.console.is_terminal
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            *extra_columns,
            console=self.console,
            transient=True,
            disable=not self.live,
        )

    def __enter__(self) -> Bars:
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()

    def add(self, description: str, total: float, **fields: Any) -> TaskID:
        return self._progress.add_task(description, total=total, **fields)

    def advance(self, bar: TaskID, amount: float = 1) -> None:
        self._progress.advance(bar, amount)

    def update(self, bar: TaskID, **fields: Any) -> None:
        self._progress.update(bar, **fields)

    def remove(self, bar: TaskID) -> None:
        self._progress.remove_task(bar)

    @contextlib.contextmanager
    def task(self, description: str, total: float) -> Iterator[Advance]:
        """A bar for one phase; the context yields a function that advances it."""
        bar = self.add(description, total)
        try:
            yield lambda amount: self.advance(bar, amount)
        finally:
            self.remove(bar)

    def say(self, message: str) -> None:
        """A dim line above the bars on a terminal; nothing in a log (it would repeat it)."""
        if self.live:
            self._progress.console.print(f"[dim]{message}[/]")
