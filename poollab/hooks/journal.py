"""The run journal: one line per job event, written where the job runs (for tests; off by default).

When ``POOLLAB_RUN_JOURNAL`` names a file, every consumer's hook layer appends to it::

    start <task_id> <pool> <pid> <time>     the job began to run
    stored <task_id> <pool> <pid> <time>    its result was written (its ack comes after)

Each line is one ``write()`` on a descriptor opened with ``O_APPEND``: the kernel appends it
whole, so prefork's children, threads, greenlets and the asyncio consumer can share one file
(even several consumers). A test reads it back into runs per task id — a job lost has no
``stored`` line, a job run twice has two — instead of parsing log lines.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

log = logging.getLogger(__name__)

Event = Literal["start", "stored"]
EVENTS: tuple[Event, ...] = ("start", "stored")


class RunJournal:
    """Appends job events to one file; safe to share across processes, threads and greenlets."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid = 0

    def _descriptor(self) -> int:
        # opened again in a forked child: a descriptor inherited from the parent may have
        # been closed (and its number reused) by the pool that forked it
        pid = os.getpid()
        if self._fd is None or self._pid != pid:
            self._fd = os.open(
                self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644
            )
            self._pid = pid
        return self._fd

    def write(self, event: Event, task_id: str, pool: str) -> None:
        line = f"{event} {task_id} {pool or '-'} {os.getpid()} {time.time():.6f}\n"
        try:
            os.write(self._descriptor(), line.encode())
        except OSError as exc:
            # the journal is a test's record: it must never stop a consumer
            log.error("run journal %s: %s", self.path, exc)

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None


@dataclass(frozen=True, slots=True)
class JournalLine:
    event: Event
    task_id: str
    pool: str
    pid: int
    t: float


def parse_line(text: str) -> JournalLine | None:
    """One line of the journal; None for anything else (a line cut short by a kill)."""
    parts = text.split()
    if len(parts) != 5 or parts[0] not in EVENTS:
        return None
    event, task_id, pool, pid, t = parts
    try:
        return JournalLine(cast(Event, event), task_id, pool, int(pid), float(t))
    except ValueError:
        return None


def read_journal(path: Path) -> list[JournalLine]:
    if not path.exists():
        return []
    lines = (parse_line(text) for text in path.read_text(errors="replace").splitlines())
    return [line for line in lines if line is not None]
