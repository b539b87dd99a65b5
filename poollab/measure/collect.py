"""Collecting the stored results of many jobs at once, by id, straight from the result backend.

``collect(client, ids, timeout_s)`` reads ``celery-task-meta-<id>`` in MGET batches until
every id has a final state or the time is up. Every consumer of the lab (the Celery pools and
the asyncio consumer) writes its results under these keys, so one reader serves them all,
and it holds no subscription per job (Celery's own ``AsyncResult`` subscribes to each).

Each pass is one round trip: the MGETs of all its batches go out in one pipeline.
:func:`read_raw` is that pass alone, for any key scheme (the peers' systems store their
results under their own keys); :func:`job_timing` and :func:`failure_reason` read a meta.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from poollab.timings import JobTiming

# Celery's Redis result backend key prefix, which the asyncio consumer writes too
META_PREFIX = "celery-task-meta-"
# the states after which a job's result no longer changes (celery.states.READY_STATES)
FINAL_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED"})


@dataclass
class Collected:
    """What came back: the final meta of each finished id, and the ids still without one."""

    metas: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)

    def succeeded(self) -> dict[str, dict[str, Any]]:
        return {i: m for i, m in self.metas.items() if m.get("status") == "SUCCESS"}

    def timings(self) -> list[JobTiming]:
        """The timings of every job that succeeded with the lab's envelope."""
        return [t for t in map(job_timing, self.metas.values()) if t is not None]

    def failures(self) -> dict[str, str]:
        """Why each finished job that gave no timings failed, by id."""
        return {i: failure_reason(m) for i, m in self.metas.items() if job_timing(m) is None}


def meta_key(task_id: str) -> str:
    return f"{META_PREFIX}{task_id}"


def job_timing(meta: dict[str, Any]) -> JobTiming | None:
    """A succeeded job's timings (from :func:`poollab.jobs.envelope`); None for any other."""
    result = meta.get("result")
    if meta.get("status") != "SUCCESS" or not isinstance(result, dict) or "timings" not in result:
        return None
    return JobTiming.from_envelope(result)


def failure_reason(meta: dict[str, Any]) -> str:
    """``Type: message``, as ``str()`` of the exception Celery would rebuild from the meta."""
    result = meta.get("result")
    if isinstance(result, dict) and "exc_type" in result:
        args = result.get("exc_message")
        args = list(args) if isinstance(args, list | tuple) else [args]
        message = "" if not args else str(args[0]) if len(args) == 1 else str(tuple(args))
        return f"{result['exc_type']}: {message}"
    return f"{type(result).__name__}: {result}"


def read_raw(
    client: redis.Redis,
    ids: Sequence[str],
    *,
    key_for: Callable[[str], str] = meta_key,
    batch: int = 1000,
) -> list[Any]:
    """What is stored under each id's key, in the order of ``ids`` (None where nothing is).

    One round trip whatever the count: an MGET per ``batch`` keys, all in one pipeline
    (batches keep each reply small enough not to stall Redis for other clients).
    """
    pipe = client.pipeline(transaction=False)
    for first in range(0, len(ids), batch):
        pipe.mget([key_for(task_id) for task_id in ids[first : first + batch]])
    return [raw for chunk in pipe.execute() for raw in chunk]


def collect(
    client: redis.Redis,
    ids: Sequence[str],
    timeout_s: float,
    *,
    interval_s: float = 0.05,
    batch: int = 1000,
    on_progress: Callable[[int], None] | None = None,
    on_result: Callable[[str, dict[str, Any]], None] | None = None,
    key_for: Callable[[str], str] = meta_key,
) -> Collected:
    """Wait at most ``timeout_s`` for the results of ``ids``; never raises on a timeout.

    ``on_progress(done)`` is called after each pass with how many ids have a final state,
    ``on_result(id, meta)`` once for each id as its final state is found. A
    ``timeout_s`` of 0 makes a single pass. A result that is not JSON (a foreign writer)
    counts as a final ``FAILURE`` rather than stopping the collection.
    """
    found: dict[str, dict[str, Any]] = {}
    pending = list(dict.fromkeys(ids))
    deadline = time.monotonic() + max(timeout_s, 0.0)
    while pending:
        still: list[str] = []
        raws = read_raw(client, pending, key_for=key_for, batch=batch)
        for task_id, raw in zip(pending, raws, strict=True):
            meta = _decode(raw)
            if meta is not None and meta.get("status") in FINAL_STATES:
                found[task_id] = meta
                if on_result is not None:
                    on_result(task_id, meta)
            else:
                still.append(task_id)
        pending = still
        if on_progress is not None:
            on_progress(len(found))
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(min(interval_s, max(deadline - time.monotonic(), 0.0)))
    return Collected(found, pending)


def _decode(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        meta = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {"status": "FAILURE", "result": None, "error": "result is not JSON"}
    return meta if isinstance(meta, dict) else None
