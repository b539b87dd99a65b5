"""Time bounds: every measuring loop in the demos stops on a count *and* on a deadline."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self._end - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self._end


def timed(fn: Callable[[], object]) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def repeat_timed(
    fn: Callable[[], object],
    count: int,
    deadline: Deadline,
    on_each: Callable[[], None] | None = None,
) -> list[float]:
    """Time up to ``count`` calls; always at least one, even past the deadline."""
    times: list[float] = []
    for _ in range(max(1, count)):
        times.append(timed(fn))
        if on_each is not None:
            on_each()
        if deadline.expired():
            break
    return times


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
