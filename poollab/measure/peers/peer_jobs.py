"""The two benchmark jobs as every peer worker runs them: the same work, the same result.

``noop`` returns its argument; ``io`` asks the upstream for a response after ``ms``
milliseconds, through one shared aiohttp session (as the consumer's I/O jobs do). Both
return the value with the job's start and finish times, which the benchmark reads back.
Only the standard library and aiohttp: this runs in the peers' virtualenv too.
"""

from __future__ import annotations

import os
import time
from typing import Any

import aiohttp

IDS_PREFIX = "bench-"


def redis_url() -> str:
    return os.environ["BENCH_REDIS_URL"]


def upstream_url() -> str:
    return os.environ["BENCH_UPSTREAM_URL"].rstrip("/")


def concurrency() -> int:
    return int(os.environ.get("BENCH_CONCURRENCY", "500"))


def job_id(run: str, index: int) -> str:
    return f"{IDS_PREFIX}{run}-{index:07d}"


def timed(value: Any, started: float) -> dict[str, Any]:
    return {"value": value, "timings": {"started": started, "finished": time.time()}}


_session: aiohttp.ClientSession | None = None


def session() -> aiohttp.ClientSession:
    """One session per worker process, created inside its event loop on first use."""
    global _session
    if _session is None:
        connector = aiohttp.TCPConnector(limit=max(concurrency(), 100), limit_per_host=0)
        _session = aiohttp.ClientSession(connector=connector)
    return _session


async def close_session() -> None:
    global _session
    if _session is not None:
        await _session.close()
        _session = None


async def noop(x: Any = None) -> dict[str, Any]:
    return timed(x, time.time())


async def io(ms: int) -> dict[str, Any]:
    started = time.time()
    timeout = aiohttp.ClientTimeout(total=ms / 1000 + 30)
    async with session().get(f"{upstream_url()}/delay?ms={ms}", timeout=timeout) as response:
        body = await response.read()
        value = {"status": response.status, "ms": ms, "bytes": len(body)}
    return timed(value, started)


def job_kwargs(kind: str, latency_ms: int) -> dict[str, Any]:
    return {"x": None} if kind == "noop" else {"ms": latency_ms}
