"""The collector: per-job timings and resource samples as Prometheus metrics, raw data on disk.

``poollab serve collector`` (port ``POOLLAB_COLLECTOR_PORT``, 8002): ``GET /metrics``,
``GET /healthz``, ``GET /runs`` and ``POST /runs?name=`` (start a new raw-data directory),
and the live comparison: ``GET /`` (a page, shipped with the package) and ``GET /api/pools``
(its figures, see :mod:`.live`).

Where the data comes from, and why it costs the consumers nothing:

* **Results**: Celery's Redis result backend PUBLISHes every result on the channel named by
  its key (``celery-task-meta-<id>``) as it stores it (so that ``AsyncResult.get()`` can
  wake), and the asyncio consumer does the same. The collector PSUBSCRIBEs to that pattern:
  no extra write per job, no scan of the keyspace, nothing to configure on Redis. The price:
  results published while the collector is not connected are not seen, and PUB/SUB is not
  scoped to a database, so labs sharing one Redis server share their results' channels.
* **Samples**: the consumers' ``poollab:samples:<pool>`` streams, read with XREAD from the
  newest entry on (one write per consumer per interval; see :mod:`poollab.hooks.sampler`).
* **Queues**: kombu's own lists and ``unacked`` hash, one pipeline a second
  (see :mod:`.queues`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from celery.backends.base import KeyValueStoreBackend
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.exceptions import RedisError

from poollab.backoff import Backoff
from poollab.hooks.sampler import FIELD, STREAM_PREFIX, Sample, stream_key
from poollab.services.collector.live import TICK_S, LiveView
from poollab.services.collector.metrics import CollectorMetrics
from poollab.services.collector.page import add_page_routes
from poollab.services.collector.queues import QueuePoller
from poollab.services.collector.store import RunStore
from poollab.settings import ALL_POOLS, Settings, get_settings

log = logging.getLogger(__name__)

RESULT_PATTERN = f"{KeyValueStoreBackend.task_keyprefix}*"
DISCOVER_EVERY_S = 10.0
RUN_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
QUEUE_POLL_S = 1.0
CANCEL_AGAIN_S = 0.5
# a Redis that stops answering (paused, partitioned) fails the poll instead of hanging it
QUEUE_SOCKET_TIMEOUT_S = 5.0


class CollectorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POOLLAB_COLLECTOR_", extra="ignore")

    host: str = "127.0.0.1"
    data_dir: Path = Path(".poollab/collector")
    flush_s: float = 1.0


@dataclass
class Status:
    results_connected: bool = False
    samples_connected: bool = False
    queues_connected: bool = False
    results_seen: int = 0
    samples_seen: int = 0
    last_error: str = ""


SETTINGS_KEY = web.AppKey("settings", Settings)
COLLECTOR_SETTINGS_KEY = web.AppKey("collector_settings", CollectorSettings)
METRICS_KEY = web.AppKey("metrics", CollectorMetrics)
STORE_KEY = web.AppKey("store", RunStore)
STATUS_KEY = web.AppKey("status", Status)
LIVE_KEY = web.AppKey("live", LiveView)


# --- following Redis ------------------------------------------------------------------------


Session = Callable[[aioredis.Redis, Callable[[], None]], Awaitable[None]]


async def _reconnecting(
    app: web.Application,
    connected: str,
    url: str,
    session: Session,
    socket_timeout: float | None = None,
) -> None:
    """Run ``session`` on a fresh client, again after each Redis error, with backoff.

    ``session`` calls its second argument once it is connected: the status flag named
    ``connected`` goes up and the backoff starts over. Runs until the app's cleanup cancels it.
    """
    status = app[STATUS_KEY]
    backoff = Backoff()

    def on_connected() -> None:
        setattr(status, connected, True)
        backoff.reset()

    while True:
        client = aioredis.Redis.from_url(
            url, socket_connect_timeout=2.0, socket_timeout=socket_timeout
        )
        try:
            await session(client, on_connected)
        except (RedisError, OSError) as exc:
            setattr(status, connected, False)
            status.last_error = f"{type(exc).__name__}: {exc}"
            delay = backoff.next()
            log.warning("collector: %s; retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
        finally:
            setattr(status, connected, False)
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()


def handle_result(app: web.Application, raw: bytes | str) -> None:
    try:
        meta = json.loads(raw)
    except ValueError:
        return
    if not isinstance(meta, dict):
        return
    row = app[METRICS_KEY].observe_result(meta)
    app[STATUS_KEY].results_seen += 1
    if row is not None:
        app[STORE_KEY].add("jobs", row)
        app[LIVE_KEY].observe_job(row)


async def follow_results(app: web.Application) -> None:
    """Every result as it is stored, from the channel the result backend publishes it on."""

    async def session(client: aioredis.Redis, connected: Callable[[], None]) -> None:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.psubscribe(RESULT_PATTERN)
            connected()
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None:
                    handle_result(app, message["data"])
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    await _reconnecting(app, "results_connected", app[SETTINGS_KEY].result_backend_url, session)


async def _start_ids(client: aioredis.Redis, keys: list[str]) -> dict[str, str]:
    """Read from each stream's newest entry on (so the gauges fill at once)."""
    ids: dict[str, str] = {}
    for key in keys:
        newest: Any = await client.xrevrange(key, count=1)
        ids[key] = _id_before(newest[0][0]) if newest else "0-0"
    return ids


def _id_before(entry_id: bytes | str) -> str:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return f"{ms}-{int(seq) - 1}" if int(seq) > 0 else f"{int(ms) - 1}-18446744073709551615"


async def _discover(client: aioredis.Redis, known: dict[str, str]) -> None:
    async for key in client.scan_iter(match=f"{STREAM_PREFIX}*", count=100):
        name = key.decode() if isinstance(key, bytes) else key
        if name not in known:
            known.update(await _start_ids(client, [name]))


def handle_sample(app: web.Application, fields: dict[Any, Any]) -> None:
    raw = fields.get(FIELD.encode(), fields.get(FIELD))
    if raw is None:
        return
    try:
        sample = Sample.from_json(raw)
    except (ValueError, TypeError):
        return
    app[METRICS_KEY].observe_sample(sample)
    app[LIVE_KEY].observe_sample(sample)
    app[STATUS_KEY].samples_seen += 1
    app[STORE_KEY].add("samples", asdict(sample))


async def follow_samples(app: web.Application) -> None:
    """The consumers' resource samples, from their streams, as they are written."""

    async def session(client: aioredis.Redis, connected: Callable[[], None]) -> None:
        ids = await _start_ids(client, [stream_key(pool) for pool in ALL_POOLS])
        discovered_at = 0.0
        connected()
        while True:
            if time.monotonic() - discovered_at > DISCOVER_EVERY_S:
                await _discover(client, ids)
                discovered_at = time.monotonic()
            found: Any = await client.xread(ids, block=1000, count=500)  # type: ignore[arg-type]
            for key, entries in found or []:
                name = key.decode() if isinstance(key, bytes) else key
                for entry_id, fields in entries:
                    handle_sample(app, fields)
                    ids[name] = entry_id.decode() if isinstance(entry_id, bytes) else entry_id

    await _reconnecting(app, "samples_connected", app[SETTINGS_KEY].broker_url, session)


async def follow_queues(app: web.Application) -> None:
    """Each pool's waiting and unacknowledged jobs, one pipeline about once a second."""
    poller = QueuePoller(ALL_POOLS)

    async def session(client: aioredis.Redis, connected: Callable[[], None]) -> None:
        while True:
            began = time.monotonic()
            stats = await poller.poll(client, time.time())
            app[METRICS_KEY].observe_queues(stats)
            app[LIVE_KEY].observe_queues(stats)
            connected()
            await asyncio.sleep(max(QUEUE_POLL_S - (time.monotonic() - began), 0.0))

    await _reconnecting(
        app,
        "queues_connected",
        app[SETTINGS_KEY].broker_url,
        session,
        socket_timeout=QUEUE_SOCKET_TIMEOUT_S,
    )


async def tick_live(app: web.Application) -> None:
    # independent of Redis: while it is down the charts go on, with nothing completed
    while True:
        app[LIVE_KEY].tick()
        await asyncio.sleep(TICK_S)


async def flush_every(app: web.Application) -> None:
    interval = app[COLLECTOR_SETTINGS_KEY].flush_s
    while True:
        await asyncio.sleep(interval)
        app[STORE_KEY].flush()
        app[METRICS_KEY].forget_stale()


async def _background(app: web.Application) -> AsyncIterator[None]:
    tasks = [
        asyncio.create_task(follow_results(app), name="results"),
        asyncio.create_task(follow_samples(app), name="samples"),
        asyncio.create_task(flush_every(app), name="flush"),
        asyncio.create_task(follow_queues(app), name="queues"),
        asyncio.create_task(tick_live(app), name="live"),
    ]
    yield
    # redis-py 8.1's asyncio client now and then loses a cancellation that lands in a
    # blocking read (XREAD BLOCK; about 1 in 60 with a bare client), and the task reads on:
    # cancel again until every task has ended, rather than wait on it for ever
    pending = tasks
    while pending:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=CANCEL_AGAIN_S)
        pending = [task for task in pending if not task.done()]
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    app[STORE_KEY].flush()


# --- HTTP -----------------------------------------------------------------------------------


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS_KEY].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(request: web.Request) -> web.Response:
    status = request.app[STATUS_KEY]
    ok = status.results_connected and status.samples_connected and status.queues_connected
    return web.json_response(
        {"status": "ok" if ok else "degraded", "service": "collector", **asdict(status),
         "run": request.app[STORE_KEY].name},
        status=200 if ok else 503,
    )  # fmt: skip


async def api_pools(request: web.Request) -> web.Response:
    metrics = request.app[METRICS_KEY]
    failed: dict[str, float | None] = {pool: metrics.failed_total(pool) for pool in ALL_POOLS}
    return web.json_response(
        request.app[LIVE_KEY].snapshot(failed), headers={"Cache-Control": "no-store"}
    )


async def list_runs(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    return web.json_response({"current": store.info(), "runs": store.runs()})


async def new_run(request: web.Request) -> web.Response:
    name = request.query.get("name")
    if name is not None and not RUN_NAME.match(name):
        return web.json_response(
            {"error": "invalid run name", "field": "name",
             "detail": "1 to 64 of A-Z a-z 0-9 . _ -"},
            status=422,
        )  # fmt: skip
    run = request.app[STORE_KEY].start_run(name)
    return web.json_response({"run": run}, status=201)


def create_app(
    settings: Settings | None = None, collector_settings: CollectorSettings | None = None
) -> web.Application:
    app = web.Application()
    app[SETTINGS_KEY] = settings or get_settings()
    app[COLLECTOR_SETTINGS_KEY] = collector_settings or CollectorSettings()
    app[METRICS_KEY] = CollectorMetrics()
    app[STORE_KEY] = RunStore(app[COLLECTOR_SETTINGS_KEY].data_dir)
    app[STATUS_KEY] = Status()
    app[LIVE_KEY] = LiveView(ALL_POOLS)
    app.cleanup_ctx.append(_background)
    add_page_routes(app)
    app.router.add_get("/api/pools", api_pools)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/runs", list_runs)
    app.router.add_post("/runs", new_run)
    return app


def serve(host: str | None, port: int | None, loop: str) -> None:
    """``poollab serve collector``."""
    from poollab.services.run import run_service

    settings = get_settings()
    collector_settings = CollectorSettings()
    run_service(
        create_app(settings, collector_settings),
        host or collector_settings.host,
        port or settings.collector_port,
        loop,
    )
