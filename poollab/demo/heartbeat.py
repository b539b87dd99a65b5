"""A heartbeat coroutine that measures its own loop's lag: how late each short sleep ends.

Any coroutine on the loop runs only when the loop gets to it, so the heartbeat's lateness is
what every other coroutine waits too. Used by ``blocked-loop`` and ``anyio``; the consumer's
own monitor (:mod:`poollab.consumer.looplag`) is the same idea at a cheaper interval.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from poollab.timings import percentile

# how often the demos' heartbeat wakes: short enough to see a 10 ms stall, and cheap
TICK_S = 0.005


@dataclass
class Heartbeat:
    """``await beat.run(sleep)`` until ``beat.stop()``; ``sleep`` is the framework's own
    (asyncio.sleep, anyio.sleep), so the same heartbeat runs on any backend."""

    tick_s: float = TICK_S
    lags_s: list[float] = field(default_factory=list)
    _stopped: bool = False

    async def run(self, sleep: Callable[[float], Awaitable[object]]) -> None:
        while not self._stopped:
            due = time.monotonic() + self.tick_s
            await sleep(self.tick_s)
            self.lags_s.append(max(time.monotonic() - due, 0.0))

    def stop(self) -> None:
        self._stopped = True

    def figures_ms(self) -> dict[str, float]:
        """p50, p99 and max lag in ms (NaN with no beat: the loop never let it run)."""
        ordered = sorted(self.lags_s)
        return {
            "lag_p50_ms": round(percentile(ordered, 50) * 1000, 2),
            "lag_p99_ms": round(percentile(ordered, 99) * 1000, 2),
            "lag_max_ms": round((ordered[-1] if ordered else float("nan")) * 1000, 2),
        }
