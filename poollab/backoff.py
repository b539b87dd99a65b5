"""Exponential backoff between retries of a Redis call, with one cap for the whole lab.

Every loop that retries Redis (the asyncio consumer's start-up and fetch loop, its result
writer, the collector's subscriptions) waits ``first``, then twice as long each failure,
never more than ``cap``: short enough that a restarted Redis is picked up within seconds,
long enough that a Redis that stays down is not hammered.
"""

from __future__ import annotations

import asyncio
import contextlib

# the longest wait between two attempts, for every retry loop
RETRY_MAX_S = 5.0


class Backoff:
    """The delays before successive retries: ``first``, doubled each time, at most ``cap``."""

    def __init__(self, first: float = 0.1, cap: float = RETRY_MAX_S) -> None:
        if not 0 < first <= cap:
            raise ValueError(f"need 0 < first <= cap, got first={first}, cap={cap}")
        self.first = first
        self.cap = cap
        self._next = first

    def next(self) -> float:
        """The delay to wait now; the following one is twice as long (up to the cap)."""
        delay = self._next
        self._next = min(delay * 2, self.cap)
        return delay

    def reset(self) -> None:
        """After a success: the next failure waits ``first`` again."""
        self._next = self.first


async def sleep_or_stop(seconds: float, stop: asyncio.Event | None = None) -> bool:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile; True when stopped."""
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
