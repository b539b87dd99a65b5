"""What an experiment is given: quick or full mode, where charts go, where progress goes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

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

    def pick(self, quick: T, full: T) -> T:
        return quick if self.quick else full

    def chart_path(self, name: str) -> Path | None:
        if not self.charts:
            return None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return self.out_dir / f"{name}.png"
