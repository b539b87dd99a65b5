"""How late the consumer's event loop wakes up: its own measure of being blocked.

:meth:`LoopLag.run` sleeps ``interval_s`` again and again and records how much later than
asked it woke. A loop that only awaits wakes within a millisecond or so; a job that blocks
the loop (a CPU step run inline, a blocking call) delays every wake-up by as long as it
blocks, and with it every other job, the heartbeat and the writer.

The hook layer's sampler thread reads :meth:`LoopLag.take_max` with each sample: the largest
lag since its previous read, or, while the loop is stuck right now, how overdue the pending
wake-up already is, so that a stalled loop shows up while it is stalled rather than after.
Celery's pools never run the monitor, and their samples carry no lag.
"""

from __future__ import annotations

import asyncio
import threading
import time

# one wake-up per 100 ms costs a few microseconds of loop time each: nothing next to the jobs
DEFAULT_INTERVAL_S = 0.1


class LoopLag:
    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.interval_s = interval_s
        self.wakeups = 0
        # the sampler reads from its own thread while the loop writes
        self._lock = threading.Lock()
        self._max: float | None = None
        self._due: float | None = None

    async def run(self) -> None:
        """Measure for ever (until cancelled); one of the consumer's background tasks."""
        while True:
            due = time.monotonic() + self.interval_s
            with self._lock:
                self._due = due
            await asyncio.sleep(self.interval_s)
            self.record(time.monotonic() - due)

    def record(self, lag_s: float) -> None:
        lag_s = max(lag_s, 0.0)
        with self._lock:
            self.wakeups += 1
            self._due = None
            self._max = lag_s if self._max is None else max(self._max, lag_s)

    def take_max(self) -> float | None:
        """The largest lag since the previous call (None if the monitor never ran)."""
        with self._lock:
            largest = self._max
            if self._due is not None:
                overdue = max(time.monotonic() - self._due, 0.0)
                largest = overdue if largest is None else max(largest, overdue)
            self._max = None
        return largest
