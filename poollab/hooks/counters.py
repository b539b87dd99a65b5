"""Jobs succeeded and failed in a consumer, counted where they run and read by its sampler.

Counted in shared memory created before prefork forks its children, so the children's
increments are seen by the sampler in the main process. Reading the counts is part of the
sample the consumer writes anyway: counting costs no write per job.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.sharedctypes import Synchronized


class JobCounts:
    """Two counters in shared memory; create it in the parent before any child is forked."""

    def __init__(self) -> None:
        # a lock of its own: the threads pool increments from many threads at once
        self._succeeded: Synchronized[int] = multiprocessing.Value("q", 0, lock=True)
        self._failed: Synchronized[int] = multiprocessing.Value("q", 0, lock=True)

    def record(self, ok: bool) -> None:
        counter = self._succeeded if ok else self._failed
        with counter.get_lock():
            counter.value += 1

    @property
    def succeeded(self) -> int:
        return int(self._succeeded.value)

    @property
    def failed(self) -> int:
        return int(self._failed.value)
