"""How much CPU other programs took while an experiment ran.

Timing figures on a machine busy with other work are not a fair test of a claim: a claim that
"did not hold" there may only have been starved of CPU. The meter reads the machine's busy CPU
time and subtracts this process tree's own, so the remainder is everybody else's.
"""

from __future__ import annotations

import os
import time

from poollab.measure.cpu import machine_busy_seconds
from poollab.measure.proctree import tree_cpu_seconds

# other programs using this many cores on average make the machine "busy"
BUSY_CORES = 0.5


def own_cpu_seconds() -> float:
    """CPU of this process, its live descendants, and the children it has already reaped."""
    return tree_cpu_seconds(os.getpid())


class BackgroundLoad:
    """Context manager: ``other_cores`` is the average number of cores others kept busy."""

    def __init__(self) -> None:
        self.other_cores = 0.0
        self.cpu_count = os.cpu_count() or 1

    def __enter__(self) -> BackgroundLoad:
        self._start = time.monotonic()
        self._busy = machine_busy_seconds()
        self._own = own_cpu_seconds()
        return self

    def __exit__(self, *exc_info: object) -> None:
        wall = time.monotonic() - self._start
        others = (machine_busy_seconds() - self._busy) - (own_cpu_seconds() - self._own)
        self.other_cores = max(0.0, others / wall) if wall > 0 else 0.0

    @property
    def busy(self) -> bool:
        return self.other_cores >= BUSY_CORES
