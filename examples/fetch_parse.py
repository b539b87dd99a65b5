"""An I/O-then-parse job, ``async def``: a GET to the lab's upstream, then a parse of the body.

The wait is the upstream's ``ms``; the parse walks the ``kb`` KiB body in 16-byte records in
pure Python, as a binary decoder would, holding the GIL for a time that grows with ``kb``.
So ``kb`` moves the job from waiting-bound (small: gevent and the asyncio consumer run
hundreds at once) to parse-bound (large: the loop, or gevent's one thread, is busy parsing
and every other job waits; processes win again).

On the asyncio consumer it runs on the event loop itself; on the Celery pools each job gets
its own loop (``asyncio.run``), and so its own HTTP session: the cost of calling async code
from a pool that is not async. The upstream is the lab's (``POOLLAB_UPSTREAM_URL``).

    POOLLAB_JOBS=fetch_parse PYTHONPATH=examples poollab up
    curl -s -XPOST localhost:8000/jobs \\
      -d '{"pool": "asyncio", "kind": "user", "task": "fetch_parse:fetch_and_parse",
           "params": {"ms": 50, "kb": 64}}'
"""

from __future__ import annotations

import aiohttp

from poollab.settings import get_settings

MAX_KB = 8192
RECORD = 16


async def fetch_and_parse(ms: int = 50, kb: int = 16) -> dict[str, int]:
    """GET ``/delay?ms=&bytes=`` from the upstream, then decode the body record by record."""
    if not 0 <= ms <= 60_000 or not 0 <= kb <= MAX_KB:
        raise ValueError(f"ms must be 0..60000 and kb 0..{MAX_KB}, got ms={ms}, kb={kb}")
    url = f"{get_settings().upstream_url.rstrip('/')}/delay?ms={ms}&bytes={kb * 1024}"
    timeout = aiohttp.ClientTimeout(total=ms / 1000 + 30)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
        response.raise_for_status()
        body = await response.read()
    return {"status": response.status, "records": _records(body), "bytes": len(body)}


def _records(body: bytes) -> int:
    count = 0
    for start in range(0, len(body), RECORD):
        # what a decoder does per record: take the bytes apart into a value
        int.from_bytes(body[start : start + RECORD], "little")
        count += 1
    return count
