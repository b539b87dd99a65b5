"""The child side of the start-method experiment: kept tiny, because spawn imports it afresh.

``HEAP`` is set in the parent before a child starts. A forked child inherits it page for page
(copy-on-write); a spawned or forkserver child re-imports this module and finds it empty.
"""

from __future__ import annotations

import time
from multiprocessing.connection import Connection

HEAP: list[str] | None = None


def child(conn: Connection) -> None:
    conn.send(("up", HEAP is not None))
    if conn.recv() == "touch":
        start = time.perf_counter()
        # merely reading each object bumps its reference count, a write to the object's
        # header: every page of the heap is copied into this child
        touched = sum(1 for _ in HEAP or ())
        conn.send(("touched", touched, time.perf_counter() - start))
        conn.recv()  # wait until the parent has read this child's memory
    conn.close()
