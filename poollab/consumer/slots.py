"""Bounded concurrency: a message is taken only when a job slot is free for it.

A counting semaphore that can say how many slots are free, so one take can fill them all,
and that a stopping consumer can interrupt.
"""

from __future__ import annotations

import asyncio


class Slots:
    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("concurrency must be at least 1")
        self.size = size
        self.used = 0
        self._changed = asyncio.Event()

    @property
    def free(self) -> int:
        return self.size - self.used

    def take(self, count: int) -> None:
        if count > self.free:
            raise RuntimeError(f"taking {count} slots with {self.free} free")
        self.used += count

    def release(self, count: int = 1) -> None:
        if count > self.used:
            raise RuntimeError(f"releasing {count} slots with {self.used} used")
        self.used -= count
        self._changed.set()

    def interrupt(self) -> None:
        """Wake a waiter even though no slot is free (the consumer is stopping)."""
        self._changed.set()

    async def wait_free(self) -> None:
        """Return when a slot is free, or when interrupted."""
        if self.used < self.size:
            return
        self._changed.clear()
        await self._changed.wait()
