"""How one consumer runs; light to import, so ``--healthcheck`` starts fast."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Literal

from poollab.settings import Settings

POOL = "asyncio"
CpuExecutorKind = Literal["process", "thread", "inline"]
CPU_EXECUTORS: tuple[CpuExecutorKind, ...] = ("process", "thread", "inline")
TAKE_MAX = 100  # messages per pop script: bounds the time the script holds Redis


@dataclass(frozen=True)
class ConsumerConfig:
    nodename: str
    queue: str = POOL
    concurrency: int = 100
    loop: str = "asyncio"
    cpu_executor: CpuExecutorKind = "process"
    cpu_workers: int | None = None
    grace_s: float = 30.0
    # how long one blocking wait on an empty queue lasts before the priority lists are polled
    wait_s: float = 1.0
    take_max: int = TAKE_MAX
    # None: derived from the visibility timeout
    restore_interval_s: float | None = None
    redis_connections: int = 16

    def info(self, settings: Settings) -> dict[str, Any]:
        """How this consumer runs: sent with worker-online and kept under the liveness key."""
        return {
            "pool": POOL,
            "queue": self.queue,
            "concurrency": self.concurrency,
            "loop": self.loop,
            "cpu_executor": self.cpu_executor,
            "cpu_workers": self.cpu_workers or os.cpu_count() or 1,
            "task_events": settings.task_events,
            "visibility_timeout": settings.visibility_timeout,
            "pid": os.getpid(),
            "started": time.time(),
        }


def restore_interval(visibility_timeout: float) -> float:
    """How often to look for messages whose consumer died: a fraction of the timeout, 0.5-10 s."""
    return min(10.0, max(0.5, visibility_timeout / 3))
