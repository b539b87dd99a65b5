"""Group commit: every result finished while the last write was in flight goes in the next one.

One pipeline stores each result (SETEX + PUBLISH), acknowledges the batch (one ZREM and one
HDEL for all its delivery tags) and carries the buffered task events. Under load that is one
round trip for many jobs; when idle it is one round trip per job, with no timer delay.
A job's slot is freed only after its ack is written, so ``-c N`` bounds the messages held.

A failed write keeps its batch and is tried again with backoff when the failure is transient
(:func:`poollab.consumer.supervise.transient`: connection lost, ``OOM`` at ``maxmemory``,
``READONLY``...): the results are written, and their messages acknowledged, once Redis takes
them again. Any other failure puts the batch back at the head of the queue and ends
:meth:`Writer.run` with that error, which its supervisor turns into a stop of the consumer:
the messages were never acknowledged and come back after the visibility timeout.
Meanwhile :meth:`Writer.stalled` tells the heartbeat not to report the consumer alive.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

from poollab.backoff import Backoff
from poollab.consumer.broker import Broker, Completion
from poollab.consumer.events import EventDispatcher
from poollab.consumer.supervise import transient

log = logging.getLogger(__name__)

MAX_BATCH = 1000
# a write in flight this long without an answer counts as a stall (a batch is milliseconds)
STALL_S = 5.0


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
        self.failed_writes = 0
        # monotonic time of the first failure of the batch being written; None while writes
        # succeed
        self.failing_since: float | None = None
        # monotonic time the write in flight was sent; None when none is
        self._writing_since: float | None = None

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

    def unwritten_tags(self) -> list[str]:
        """The delivery tags of the finished jobs whose results are not written yet."""
        return [c.tag for c in self._pending if c.tag]

    async def run(self) -> None:
        if self._pending or self._events.pending:
            self._wake.set()  # started again by its supervisor with work left
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

    def stalled(self, now: float | None = None) -> str | None:
        """Why the writer is not making progress right now, or None when it is (or is idle)."""
        now = time.monotonic() if now is None else now
        if self.failing_since is not None:
            return f"results cannot be written for {now - self.failing_since:.1f}s"
        if self._writing_since is not None and now - self._writing_since > STALL_S:
            return f"a write has waited {now - self._writing_since:.1f}s for Redis"
        return None

    async def _write(self, batch: list[Completion], events: list[tuple[str, str]]) -> None:
        backoff = Backoff(first=0.05)
        while True:
            self._writing_since = time.monotonic()
            try:
                await self._broker.write(batch, events)
            except Exception as exc:
                self.failed_writes += 1
                if not transient(exc):
                    # back at the head, unwritten and unacknowledged: nothing is lost, the
                    # messages come back after the visibility timeout
                    self._pending.extendleft(reversed(batch))
                    raise
                if self.failing_since is None:
                    self.failing_since = time.monotonic()
                # the results are kept and written once Redis takes them again; their
                # messages stay held meanwhile, so nothing is lost either way
                delay = backoff.next()
                log.warning(
                    "writing %d results failed (%s: %s); retrying in %.2fs",
                    len(batch),
                    type(exc).__name__,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
            else:
                if self.failing_since is not None:
                    log.warning(
                        "results written again after %.1fs of failures",
                        time.monotonic() - self.failing_since,
                    )
                self.failing_since = None
                return
            finally:
                self._writing_since = None

    async def flush(self) -> None:
        """Return once everything added so far is written."""
        if self._pending or self._events.pending:
            self.poke()
        await self._idle.wait()
