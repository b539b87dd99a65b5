"""The systems compared: how to start each one's worker, publish to it, and read its results.

Each result carries the job's own start and finish times (the consumer's and Celery's in
:func:`poollab.jobs.envelope`, the peers' in :func:`.peer_jobs.timed`), so every system is
timed the same way, from what it stored.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from poollab.consumer import layout
from poollab.measure.bench.profiles import get_profile
from poollab.measure.collect import read_raw
from poollab.measure.peers import bare, peer_jobs

Span = tuple[float, float]


@dataclass(frozen=True)
class Context:
    """What every worker command needs: where things are, how much to run at once."""

    main_python: str
    peers_python: Path
    concurrency: int
    task_events: bool


@dataclass(frozen=True)
class System:
    name: str
    # "celery", "bare": published by .publish; "arq", "taskiq": by the peer's own client
    publisher: str
    queue: str
    # how results are stored: "celery", "arq", "taskiq" keys, or the bare loop's list
    results: str
    peers_venv: bool
    argv: Callable[[Context], list[str]]
    # environment the worker needs on top of the run's
    env: dict[str, str] = field(default_factory=dict)


def _consumer(loop: str) -> Callable[[Context], list[str]]:
    def argv(ctx: Context) -> list[str]:
        return [
            ctx.main_python, "-m", "poollab.consumer", "-c", str(ctx.concurrency),
            "--loop", loop, "-Q", "asyncio", "-n", f"bench-{loop}@%h", "-l", "WARNING",
        ]  # fmt: skip

    return argv


# Celery's workers run on the lab's tuned profile (one result backend per process, no mingle,
# gossip or heartbeats, prefetch 1): its defaults build a backend per greenlet. Task events
# follow the run's choice, as the consumer's do, rather than the profile's.
TUNED = get_profile("tuned")


def _celery(ctx: Context, app: str, pool: str, queue: str, node: str) -> list[str]:
    celery = str(Path(ctx.main_python).with_name("celery"))
    argv = [
        celery, "-A", app, "worker", "-P", pool, "-c", str(ctx.concurrency), "-Q", queue,
        "-n", f"{node}@%h", *TUNED.options_for(pool),
    ]  # fmt: skip
    argv += ["-E"] if ctx.task_events else []
    settings = TUNED.settings_for(pool)
    return [*argv, "--", *(f"{key}={value}" for key, value in settings.items())]


def _celery_gevent(ctx: Context) -> list[str]:
    return _celery(ctx, "poollab.worker.app", "gevent", "gevent", "bench-gevent")


# celery-aio-pool: the worker's app is .peer_aio_pool; the pool class is named by environment
AIO_QUEUE = "aio"
AIO_POOL = "celery_aio_pool.pool:AsyncIOPool"


def _celery_aio_pool(ctx: Context) -> list[str]:
    app = "poollab.measure.peers.peer_aio_pool"
    return _celery(ctx, app, "custom", AIO_QUEUE, "bench-aio")


def _arq(ctx: Context) -> list[str]:
    return [str(ctx.peers_python), "-m", "poollab.measure.peers.peer_arq", "worker"]


def _taskiq(ctx: Context) -> list[str]:
    return [
        str(ctx.peers_python.with_name("taskiq")), "worker",
        "poollab.measure.peers.peer_taskiq:broker",
        "--workers", "1", "--max-async-tasks", str(ctx.concurrency),
        "--log-level", "WARNING",
    ]  # fmt: skip


def _bare(ctx: Context) -> list[str]:
    return [ctx.main_python, "-m", "poollab.measure.peers.bare"]


SYSTEMS: dict[str, System] = {
    s.name: s
    for s in (
        System("consumer-asyncio", "celery", "asyncio", "celery", False, _consumer("asyncio")),
        System("consumer-uvloop", "celery", "asyncio", "celery", False, _consumer("uvloop")),
        System("celery-gevent", "celery", "gevent", "celery", False, _celery_gevent),
        System(
            "celery-aio-pool",
            "celery",
            AIO_QUEUE,
            "celery",
            False,
            _celery_aio_pool,
            env={"CELERY_CUSTOM_WORKER_POOL": AIO_POOL},
        ),
        System("arq", "arq", "arq:bench", "arq", True, _arq),
        System("taskiq", "taskiq", "taskiq:bench", "taskiq", True, _taskiq),
        System("bare-loop", "bare", bare.QUEUE, "bare", False, _bare),
    )
}


def publish_argv(
    system: System, ctx: Context, run: str, count: int, kind: str, ms: int
) -> list[str]:
    tail = [run, str(count), kind, str(ms)]
    if system.publisher == "arq":
        return [str(ctx.peers_python), "-m", "poollab.measure.peers.peer_arq", "publish", *tail]
    if system.publisher == "taskiq":
        return [str(ctx.peers_python), "-m", "poollab.measure.peers.peer_taskiq", "publish", *tail]
    return [
        sys.executable,
        "-m",
        "poollab.measure.peers.publish",
        system.publisher,
        system.queue,
        *tail,
    ]


def queued(client: redis.Redis, system: System) -> int:
    """Messages waiting for the worker (arq keeps its queue in a sorted set)."""
    if system.results == "arq":
        return int(client.zcard(system.queue))
    return int(client.llen(system.queue))


def _key(system: System, job_id: str) -> str:
    if system.results == "celery":
        return layout.task_meta_key(job_id)
    if system.results == "arq":
        return f"arq:result:{job_id}"
    return job_id


def done(client: redis.Redis, system: System, ids: list[str]) -> int:
    """How many of these jobs have a stored result."""
    if system.results == "bare":
        return int(client.llen(bare.RESULTS))
    total = 0
    for first in range(0, len(ids), 5000):
        keys = [_key(system, i) for i in ids[first : first + 5000]]
        total += int(client.exists(*keys))
    return total


def forget(client: redis.Redis, system: System, ids: list[str]) -> None:
    """Drop these jobs' results (the e2e probe's), so they are not counted with the run's."""
    if system.results == "bare":
        client.delete(bare.RESULTS)
    else:
        client.delete(*(_key(system, i) for i in ids))


def _timings(system: System, stored: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    """(our result dict, succeeded) from one stored result."""
    if system.results == "celery":
        return stored.get("result"), stored.get("status") == "SUCCESS"
    if system.results == "arq":
        return stored.get("r"), bool(stored.get("s"))
    if system.results == "taskiq":
        return stored.get("return_value"), not stored.get("is_err")
    return stored, True


def spans(client: redis.Redis, system: System, ids: list[str]) -> tuple[list[Span], int]:
    """(start, finish) of every stored result, and how many failed."""
    if system.results == "bare":
        raws: list[bytes | None] = client.lrange(bare.RESULTS, 0, -1)  # type: ignore[assignment]
    else:
        raws = read_raw(client, ids, key_for=lambda job_id: _key(system, job_id), batch=5000)
    out: list[Span] = []
    failed = 0
    for raw in raws:
        if raw is None:
            continue
        result, ok = _timings(system, json.loads(raw))
        if not ok or not isinstance(result, dict) or "timings" not in result:
            failed += 1
            continue
        timings = result["timings"]
        out.append((float(timings["started"]), float(timings["finished"])))
    return out, failed


def job_ids(run: str, count: int) -> list[str]:
    return [peer_jobs.job_id(run, i) for i in range(count)]
