"""Jobs started, succeeded and failed in a consumer, counted where they run.

Counted in shared memory created before prefork forks its children, so the children's
increments are seen by the sampler in the main process. Reading the counts is part of the
sample the consumer writes anyway: counting costs no write per job.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.sharedctypes import Synchronized


class JobCounts:
    """Three counters in shared memory; create it in the parent before any child is forked."""

    def __init__(self) -> None:
        # a lock of their own: the threads pool increments from many threads at once
        self._started: Synchronized[int] = multiprocessing.Value("q", 0, lock=True)
        self._succeeded: Synchronized[int] = multiprocessing.Value("q", 0, lock=True)
        self._failed: Synchronized[int] = multiprocessing.Value("q", 0, lock=True)

    @staticmethod
    def _add(counter: Synchronized[int]) -> None:
        with counter.get_lock():
            counter.value += 1

    def start(self) -> None:
        self._add(self._started)

    def record(self, ok: bool) -> None:
        self._add(self._succeeded if ok else self._failed)

    @property
    def started(self) -> int:
        return int(self._started.value)

    @property
    def succeeded(self) -> int:
        return int(self._succeeded.value)

    @property
    def failed(self) -> int:
        return int(self._failed.value)
