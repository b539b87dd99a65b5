"""Progress bars on stderr (rich), so `--json` keeps stdout clean for the results."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from poollab.demo.context import Advance


class RichProgress:
    def __init__(self, console: Console | None = None) -> None:
        self._console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self._console,
            transient=True,
            # bars only make sense on a terminal; in logs and pipes they would be noise
            disable=not self._console.is_terminal,
        )

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    @contextlib.contextmanager
    def task(self, description: str, total: float) -> Iterator[Advance]:
        task_id = self._progress.add_task(description, total=total)

        def advance(amount: float) -> None:
            self._progress.advance(task_id, amount)

        try:
            yield advance
        finally:
            self._progress.remove_task(task_id)
