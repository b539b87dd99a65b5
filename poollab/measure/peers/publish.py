"""Publishing benchmark jobs for the Celery-protocol workers and for the bare loop.

Every list-based system is published to the same way: LPUSHes of its own message format,
200 in flight at a time on redis.asyncio (what taskiq's kicker does, one LPUSH per
message). Celery-protocol messages are built by :func:`poollab.consumer.protocol.task_message`,
laid out as ``send_task`` lays them out (``tests/producer/test_publish.py`` holds the two
together): the builder the lab's publisher (:func:`poollab.producer.publish.publish`) makes its
templates with.

``python -m poollab.measure.peers.publish celery|bare QUEUE RUN COUNT KIND LATENCY_MS``
prints ``{"started": t, "finished": t}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable

import redis.asyncio as aioredis

from poollab import jobs
from poollab.consumer import protocol
from poollab.measure.peers import peer_jobs

CHUNK = 200


def celery_message(queue: str, run: str, index: int, kind: str, latency_ms: int) -> str:
    message = protocol.task_message(
        jobs.CATALOGUE[kind].task_name,
        peer_jobs.job_kwargs(kind, latency_ms),
        queue=queue,
        task_id=peer_jobs.job_id(run, index),
    )
    return protocol.encode(message)


def bare_message(queue: str, run: str, index: int, kind: str, latency_ms: int) -> str:
    return json.dumps(
        {
            "id": peer_jobs.job_id(run, index),
            "kind": kind,
            "kwargs": peer_jobs.job_kwargs(kind, latency_ms),
            "sent": time.time(),
        }
    )


BUILDERS: dict[str, Callable[[str, str, int, str, int], str]] = {
    "celery": celery_message,
    "bare": bare_message,
}


async def publish(
    url: str, style: str, queue: str, run: str, count: int, kind: str, latency_ms: int
) -> dict[str, float]:
    build = BUILDERS[style]
    client = aioredis.Redis(
        connection_pool=aioredis.BlockingConnectionPool.from_url(url, max_connections=CHUNK)
    )
    started = time.time()
    for first in range(0, count, CHUNK):
        await asyncio.gather(
            *(
                client.lpush(queue, build(queue, run, i, kind, latency_ms))
                for i in range(first, min(first + CHUNK, count))
            )
        )
    finished = time.time()
    await client.aclose()
    return {"started": started, "finished": finished}


def main(argv: list[str]) -> int:
    style, queue, run, count, kind, latency_ms = argv
    timings = asyncio.run(
        publish(peer_jobs.redis_url(), style, queue, run, int(count), kind, int(latency_ms))
    )
    print(json.dumps(timings))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
