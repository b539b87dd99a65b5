"""taskiq as benchmarked: ListQueueBroker on Redis, results in RedisAsyncResultBackend (JSON).

The worker is taskiq's own: ``taskiq worker poollab.measure.peers.peer_taskiq:broker
--workers 1 --max-async-tasks N``; ``python -m poollab.measure.peers.peer_taskiq publish
RUN COUNT KIND LATENCY_MS`` sends with taskiq's kicker and prints timings.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import taskiq.compat
from taskiq import TaskiqEvents, TaskiqState
from taskiq.serializers import JSONSerializer

from poollab.measure.peers import peer_jobs

if not hasattr(taskiq.compat, "model_dump"):
    # taskiq-redis 1.0.9 imports these; taskiq 0.13 dropped them (0.12.6 has them, the same)
    def _model_dump(instance: Any) -> Any:
        return instance.model_dump(mode="json")

    def _model_validate(model_class: Any, message: Any) -> Any:
        return model_class.model_validate(message)

    taskiq.compat.model_dump = _model_dump
    taskiq.compat.model_validate = _model_validate

from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend

QUEUE = "taskiq:bench"
PUBLISH_CHUNK = 200

broker = ListQueueBroker(peer_jobs.redis_url(), queue_name=QUEUE).with_result_backend(
    RedisAsyncResultBackend(peer_jobs.redis_url(), result_ex_time=3600, serializer=JSONSerializer())
)


@broker.task(task_name="noop")  # type: ignore[untyped-decorator]
async def noop(x: Any = None) -> dict[str, Any]:
    return await peer_jobs.noop(x)


@broker.task(task_name="io")  # type: ignore[untyped-decorator]
async def io(ms: int) -> dict[str, Any]:
    return await peer_jobs.io(ms)


@broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)  # type: ignore[untyped-decorator]
async def _shutdown(state: TaskiqState) -> None:
    await peer_jobs.close_session()


TASKS = {"noop": noop, "io": io}


async def publish(run: str, count: int, kind: str, latency_ms: int) -> dict[str, float]:
    await broker.startup()
    task = TASKS[kind]
    kwargs = peer_jobs.job_kwargs(kind, latency_ms)
    started = time.time()
    for first in range(0, count, PUBLISH_CHUNK):
        await asyncio.gather(
            *(
                task.kicker().with_task_id(peer_jobs.job_id(run, i)).kiq(**kwargs)
                for i in range(first, min(first + PUBLISH_CHUNK, count))
            )
        )
    finished = time.time()
    await broker.shutdown()
    return {"started": started, "finished": finished}


def main(argv: list[str]) -> int:
    run, count, kind, latency_ms = argv[1], int(argv[2]), argv[3], int(argv[4])
    print(json.dumps(asyncio.run(publish(run, count, kind, latency_ms))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
