"""Group commit: every result finished while the last write was in flight goes in the next one.

One pipeline stores each result (SETEX + PUBLISH), acknowledges the batch (one ZREM and one
HDEL for all its delivery tags) and carries the buffered task events. Under load that is one
round trip for many jobs; when idle it is one round trip per job, with no timer delay.
A job's slot is freed only after its ack is written, so ``-c N`` bounds the messages held.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from poollab.backoff import Backoff
from poollab.consumer.broker import Broker, Completion
from poollab.consumer.events import EventDispatcher

log = logging.getLogger(__name__)

MAX_BATCH = 1000


class Writer:
    def __init__(
        self,
        broker: Broker,
        events: EventDispatcher,
        on_written: Callable[[int], None],
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._broker = broker
        self._events = events
        self._on_written = on_written
        self._max_batch = max_batch
        self._pending: deque[Completion] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.written = 0

    @property
    def backlog(self) -> int:
        return len(self._pending)

    def add(self, completion: Completion) -> None:
        self._pending.append(completion)
        self.poke()

    def poke(self) -> None:
        """Something (a result or a buffered event) is waiting to be written."""
        self._idle.clear()
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending or self._events.pending:
                count = min(len(self._pending), self._max_batch)
                batch = [self._pending.popleft() for _ in range(count)]
                await self._write(batch, self._events.drain())
                self.written += count
                self._on_written(count)
            if not self._wake.is_set():
                self._idle.set()

    async def _write(self, batch: list[Completion], events: list[tuple[str, str]]) -> None:
        backoff = Backoff(first=0.05)
        while True:
            try:
                await self._broker.write(batch, events)
                return
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                # the results are kept and written once Redis answers again; their messages
                # stay held meanwhile, so nothing is lost either way
                delay = backoff.next()
                log.warning(
                    "writing %d results failed (%s); retrying in %.2fs", len(batch), exc, delay
                )
                await asyncio.sleep(delay)

    async def flush(self) -> None:
        """Return once everything added so far is written."""
        if self._pending or self._events.pending:
            self.poke()
        await self._idle.wait()
