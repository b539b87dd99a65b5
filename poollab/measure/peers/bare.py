"""The floor: a bare redis.asyncio consumer with no protocol, no hold, no ack, no events.

One coroutine BRPOPs a message whenever a slot is free; each message runs as a task that
does the job and LPUSHes its result to a list: two round trips per job, nothing else.
``python -m poollab.measure.peers.bare`` (BENCH_* environment, as the peers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys

import redis.asyncio as aioredis

from poollab.measure.peers import peer_jobs

QUEUE = "bare:bench"
RESULTS = "bare:results"


async def _run_one(client: aioredis.Redis, raw: bytes | str, slots: asyncio.Semaphore) -> None:
    try:
        message = json.loads(raw)
        kwargs = message["kwargs"]
        if message["kind"] == "io":
            result = await peer_jobs.io(kwargs["ms"])
        else:
            result = await peer_jobs.noop(kwargs.get("x"))
        await client.lpush(RESULTS, json.dumps({"id": message["id"], **result}))
    finally:
        slots.release()


async def consume() -> None:
    client = aioredis.Redis(
        connection_pool=aioredis.BlockingConnectionPool.from_url(
            peer_jobs.redis_url(), max_connections=peer_jobs.concurrency() + 2
        )
    )
    slots = asyncio.Semaphore(peer_jobs.concurrency())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    tasks: set[asyncio.Task[None]] = set()
    while not stop.is_set():
        await slots.acquire()
        popped = await client.brpop([QUEUE], timeout=1)
        if popped is None:
            slots.release()
            continue
        task = asyncio.create_task(_run_one(client, popped[1], slots))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    with contextlib.suppress(Exception):
        await asyncio.gather(*tasks)
    await peer_jobs.close_session()
    await client.aclose()


def main() -> int:
    asyncio.run(consume())
    return 0


if __name__ == "__main__":
    sys.exit(main())
