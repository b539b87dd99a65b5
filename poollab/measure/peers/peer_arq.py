"""arq as benchmarked: its own worker and client, results kept, JSON instead of pickle.

``python -m poollab.measure.peers.peer_arq worker`` runs the worker;
``... publish RUN COUNT KIND LATENCY_MS`` enqueues with arq's client and prints timings.
Runs in the peers' virtualenv (arq needs redis<6).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker

from poollab.measure.peers import peer_jobs

QUEUE = "arq:bench"
# arq waits poll_delay between reads of its queue (default 0.5 s, which caps a worker
# at max_jobs / 0.5 jobs per second); 0.05 s keeps the queue read well ahead of the jobs
POLL_DELAY_S = 0.05
PUBLISH_CHUNK = 200


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def _loads(raw: bytes) -> Any:
    return json.loads(raw)


async def noop(ctx: dict[str, Any], x: Any = None) -> dict[str, Any]:
    return await peer_jobs.noop(x)


async def io(ctx: dict[str, Any], ms: int) -> dict[str, Any]:
    return await peer_jobs.io(ms)


async def _shutdown(ctx: dict[str, Any]) -> None:
    await peer_jobs.close_session()


def settings() -> RedisSettings:
    return RedisSettings.from_dsn(peer_jobs.redis_url())


def run_worker() -> None:
    worker = Worker(
        functions=[noop, io],
        queue_name=QUEUE,
        redis_settings=settings(),
        max_jobs=peer_jobs.concurrency(),
        keep_result=3600,
        poll_delay=POLL_DELAY_S,
        on_shutdown=_shutdown,
        job_serializer=_dumps,
        job_deserializer=_loads,
        log_results=False,
    )
    worker.run()


async def publish(run: str, count: int, kind: str, latency_ms: int) -> dict[str, float]:
    pool = await create_pool(
        settings(), job_serializer=_dumps, job_deserializer=_loads, default_queue_name=QUEUE
    )
    kwargs = peer_jobs.job_kwargs(kind, latency_ms)
    started = time.time()
    for first in range(0, count, PUBLISH_CHUNK):
        await asyncio.gather(
            *(
                pool.enqueue_job(kind, _job_id=peer_jobs.job_id(run, i), **kwargs)
                for i in range(first, min(first + PUBLISH_CHUNK, count))
            )
        )
    finished = time.time()
    await pool.aclose()
    return {"started": started, "finished": finished}


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING)
    if argv[0] == "worker":
        run_worker()
        return 0
    run, count, kind, latency_ms = argv[1], int(argv[2]), argv[3], int(argv[4])
    print(json.dumps(asyncio.run(publish(run, count, kind, latency_ms))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
