"""The live figures: the window maths, and ``GET /api/pools`` fed by real samplers."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer

from poollab.consumer.layout import task_meta_key
from poollab.hooks.sampler import Sample, Sampler
from poollab.services.collector.app import CollectorSettings, create_app
from poollab.services.collector.live import (
    LATENCY_WINDOW_S,
    NODE_STALE_S,
    RATE_WINDOW_S,
    LiveView,
    rate_over,
    recent_percentiles,
)
from poollab.services.collector.queues import QueueStats
from poollab.settings import ALL_POOLS, Settings


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_jobs_per_s_is_the_growth_of_the_count_over_the_window() -> None:
    points = [(float(t), 10 * t) for t in range(0, 11)]  # 10 jobs a second, ticks each second
    assert rate_over(points, 10.0, 100, 5.0) == pytest.approx(10.0)
    # measured against the newest tick at least a window old, so a burst ages out
    assert rate_over(points, 10.5, 130, 5.0) == pytest.approx((130 - 50) / 5.5)
    # just after start: against the oldest tick there is
    assert rate_over([(0.0, 0), (1.0, 7)], 2.0, 12, 5.0) == pytest.approx(6.0)
    # too short to say, or nothing to measure against
    assert rate_over([(0.0, 0)], 0.2, 3, 5.0) is None
    assert rate_over([], 10.0, 3, 5.0) is None
    # nothing completed lately: zero, not unknown
    assert rate_over(points, 30.0, 100, 5.0) == 0.0


def test_latency_percentiles_cover_only_the_recent_window() -> None:
    latencies: deque[tuple[float, float]] = deque()
    latencies.extend((float(t), 5.0) for t in range(0, 10))  # old and slow
    latencies.extend((100.0 + t / 100, (t + 1) / 1000) for t in range(100))  # recent: 1..100 ms
    p50, p95, count = recent_percentiles(latencies, 105.0, LATENCY_WINDOW_S)
    assert (p50, p95, count) == (0.05, 0.095, 100)
    assert len(latencies) == 100  # the expired ones are gone for good
    assert recent_percentiles(latencies, 200.0, LATENCY_WINDOW_S) == (None, None, 0)


def _sample(pool: str, node: str, **fields: Any) -> Sample:
    figures = {"t": 1.0, "pool": pool, "node": node, "pid": 1, "procs": 3, "rss": 300 << 20,
               "uss": 120 << 20, "pss": 200 << 20, "cpu_s": 1.0, "cpu_cores": 0.5,
               "succeeded": 10, "failed": 1, "seq": 0, "started": 14, **fields}  # fmt: skip
    return Sample.from_json(json.dumps(figures))


def test_every_pool_is_in_the_snapshot_with_nulls_where_nothing_is_known() -> None:
    clock = Clock()
    live = LiveView(ALL_POOLS, clock)
    live.tick()
    for i in range(50):
        clock.now += 0.1
        live.observe_job({"pool": "gevent", "status": "SUCCESS", "sent": clock.now - 0.02,
                          "finished": clock.now - 0.01 + i / 10_000})  # fmt: skip
        if i % 10 == 9:
            live.tick()
    live.observe_job({"pool": "gevent", "status": "FAILURE"})
    live.observe_job({"pool": "nobody", "status": "SUCCESS"})
    live.observe_sample(_sample("gevent", "gevent@a"))
    live.observe_queues({"gevent": QueueStats(jobs=7, oldest_age_s=1.5, unacked=3)})
    snapshot = live.snapshot({"gevent": 2.0})
    assert set(snapshot["pools"]) == set(ALL_POOLS)
    gevent = snapshot["pools"]["gevent"]
    assert gevent["completed"] == 50
    assert gevent["jobs_per_s"] == pytest.approx(10.0)
    # nearest rank: the 25th of 50 latencies, 10.0 to 14.9 ms
    assert gevent["latency_p50_s"] == pytest.approx(0.0124, abs=1e-6)
    assert gevent["latency_jobs"] == 50
    assert (gevent["queue_jobs"], gevent["queue_oldest_age_s"], gevent["unacked"]) == (7, 1.5, 3)
    assert (gevent["failed"], gevent["running"], gevent["nodes"]) == (2, 3, 1)
    assert (gevent["rss_bytes"], gevent["uss_bytes"], gevent["processes"]) == (
        300 << 20, 120 << 20, 3,
    )  # fmt: skip
    for pool in set(ALL_POOLS) - {"gevent"}:
        figures = snapshot["pools"][pool]
        assert figures["completed"] == 0 and figures["nodes"] == 0
        for name in ("uss_bytes", "rss_bytes", "cpu_cores", "latency_p95_s", "queue_jobs",
                     "failed", "uss_per_slot_bytes"):  # fmt: skip
            assert figures[name] is None, (pool, name)
    history = snapshot["history"]
    assert len(history["t"]) == 6
    assert all(len(history["pools"][p]["jobs_per_s"]) == 6 for p in ALL_POOLS)
    assert history["pools"]["gevent"]["jobs_per_s"][-1] == pytest.approx(10.0)
    assert json.loads(json.dumps(snapshot)) == snapshot  # plain JSON all the way down

    # a consumer that stopped sampling, and queues not polled lately, are unknown again
    clock.now += max(NODE_STALE_S, RATE_WINDOW_S) + 1
    gevent = live.snapshot()["pools"]["gevent"]
    assert gevent["nodes"] == 0 and gevent["uss_bytes"] is None and gevent["queue_jobs"] is None
    assert gevent["jobs_per_s"] == 0.0


@pytest.mark.skipif(
    "concurrency" not in Sample.__dataclass_fields__, reason="samples carry no concurrency yet"
)
def test_memory_per_slot_is_the_pools_memory_over_its_total_concurrency() -> None:
    live = LiveView(ALL_POOLS, Clock())
    live.observe_sample(_sample("threads", "threads@a", concurrency=8))
    live.observe_sample(_sample("threads", "threads@b", concurrency=2, uss=80 << 20))
    live.observe_sample(_sample("solo", "solo@a"))  # a consumer that does not say its -c
    threads = live.snapshot()["pools"]["threads"]
    assert (threads["concurrency"], threads["uss_bytes"]) == (10, 200 << 20)
    assert threads["uss_per_slot_bytes"] == 20 << 20
    assert threads["rss_per_slot_bytes"] == 60 << 20
    assert live.snapshot()["pools"]["solo"]["uss_per_slot_bytes"] is None


async def test_api_pools_serves_real_samples_and_results(redis_url: str, tmp_path: Path) -> None:
    app = create_app(
        Settings(broker_url=redis_url), CollectorSettings(data_dir=tmp_path / "collector")
    )
    samplers = [
        Sampler(redis_url, pool, f"{pool}@test", 0.2, pid=os.getpid(), concurrency=4).start()
        for pool in ("threads", "asyncio")
    ]
    broker = redis.Redis.from_url(redis_url)
    try:
        async with TestClient(TestServer(app)) as http:
            deadline = time.monotonic() + 20
            while (await http.get("/healthz")).status != 200:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            # results as Celery's backend publishes them (the channel is the result's key)
            for _ in range(2):
                for _ in range(20):
                    now = time.time()
                    task_id = str(uuid.uuid4())
                    meta = {"task_id": task_id, "status": "SUCCESS", "result": {
                        "pool": "asyncio", "pid": 1,
                        "timings": {"sent": now - 0.03, "started": now - 0.02, "finished": now},
                    }}  # fmt: skip
                    broker.publish(task_meta_key(task_id), json.dumps(meta))
                await asyncio.sleep(1.1)

            body: dict[str, Any] = {}
            while time.monotonic() < deadline:
                response = await http.get("/api/pools")
                assert response.status == 200
                assert response.headers["Cache-Control"] == "no-store"
                body = await response.json()
                if all(body["pools"][p]["uss_bytes"] for p in ("threads", "asyncio")):
                    break
                await asyncio.sleep(0.2)
            assert abs(body["t"] - time.time()) < 5
            assert list(body["pools"]) == list(ALL_POOLS)
            for pool in ("threads", "asyncio"):
                figures = body["pools"][pool]
                assert figures["nodes"] == 1 and figures["concurrency"] == 4
                assert 10 << 20 < figures["uss_bytes"] <= figures["rss_bytes"]
                assert figures["uss_per_slot_bytes"] == round(figures["uss_bytes"] / 4)
                assert figures["processes"] >= 1 and figures["cpu_cores"] is not None
                assert figures["queue_jobs"] == 0 and figures["unacked"] == 0
            asyncio_figures = body["pools"]["asyncio"]
            assert asyncio_figures["completed"] == 40
            assert asyncio_figures["jobs_per_s"] and asyncio_figures["jobs_per_s"] > 0
            assert asyncio_figures["latency_p50_s"] == pytest.approx(0.03, abs=0.005)
            for pool in ("prefork", "gevent", "solo"):
                assert body["pools"][pool]["uss_bytes"] is None
                assert body["pools"][pool]["jobs_per_s"] in (0.0, None)
    finally:
        for sampler in samplers:
            sampler.stop()
        broker.close()


def test_loop_lag_is_the_worst_consumers_and_unknown_without_a_loop() -> None:
    clock = Clock()
    live = LiveView(ALL_POOLS, clock)
    live.observe_sample(_sample("asyncio", "a@1", loop_lag_s=0.002))
    live.observe_sample(_sample("asyncio", "a@2", loop_lag_s=0.35))
    live.observe_sample(_sample("gevent", "g@1"))
    assert live.pool_figures("asyncio", None)["loop_lag_s"] == 0.35
    assert live.pool_figures("gevent", None)["loop_lag_s"] is None
