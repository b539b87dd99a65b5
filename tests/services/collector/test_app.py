"""The collector: per-pool metrics from real workers' results and samples, raw data on disk."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from poollab.hooks.sampler import Sample
from poollab.measure.bench.lab import BenchLab
from poollab.measure.bench.profiles import get_profile
from poollab.producer.publish import publish, wait_for
from poollab.services.collector.app import STORE_KEY, CollectorSettings, create_app
from poollab.services.collector.metrics import STALE_AFTER_S, CollectorMetrics
from poollab.settings import Settings
from tests.conftest import free_ports, service_env

POOLLAB = str(Path(sys.executable).parent / "poollab")


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one series in Prometheus text format, or None when it is absent."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture
async def lab(redis_url: str, tmp_path: Path) -> AsyncIterator[BenchLab]:
    """Upstream plus a threads and a solo worker that sample themselves, on the tests' Redis."""
    bench_lab = BenchLab({**os.environ, **service_env(redis_url)}, tmp_path / "lab", 0.2)
    await asyncio.to_thread(bench_lab.start)
    try:
        for pool, level in (("threads", 4), ("solo", 1)):
            await asyncio.to_thread(bench_lab.start_worker, pool, level, get_profile("tuned"))
        yield bench_lab
    finally:
        await asyncio.to_thread(bench_lab.stop)


async def test_metrics_per_pool_after_jobs_ran(
    lab: BenchLab, redis_url: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "collector"
    app = create_app(
        Settings(broker_url=redis_url), CollectorSettings(data_dir=data_dir, flush_s=0.2)
    )
    async with TestClient(TestServer(app)) as http:
        deadline = time.monotonic() + 20
        while (await http.get("/healthz")).status != 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert (await http.get("/healthz")).status == 200

        client = lab.client
        assert client is not None
        ok_ids = await asyncio.to_thread(publish, client, "threads", "io", {"ms": 5}, 30)
        bad_ids = await asyncio.to_thread(
            publish, client, "threads", "io", {"ms": 1, "fail_rate": 1.0}, 4
        )
        solo_ids = await asyncio.to_thread(publish, client, "solo", "noop", {"x": 1}, 20)
        metas = await asyncio.to_thread(wait_for, client, ok_ids + bad_ids + solo_ids, 60)
        assert sum(m["status"] == "FAILURE" for m in metas.values()) == 4

        wanted = {
            ("poollab_jobs_completed_total", "threads"): 30,
            ("poollab_jobs_completed_total", "solo"): 20,
            ("poollab_job_latency_seconds_count", "threads"): 30,
            ("poollab_job_queue_wait_seconds_count", "solo"): 20,
            # failures are counted by the worker and arrive with its next sample
            ("poollab_jobs_failed_total", "threads"): 4,
            ("poollab_jobs_failed_total", "solo"): 0,
        }
        text = ""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            text = await (await http.get("/metrics")).text()
            if all(metric(text, n, pool=p) == v for (n, p), v in wanted.items()):
                break
            await asyncio.sleep(0.2)
        for (name, pool), value in wanted.items():
            assert metric(text, name, pool=pool) == value, (name, pool, text)
        assert metric(text, "poollab_results_failed_total") == 4
        for pool in ("threads", "solo"):
            node = f"{pool}@{lab.host}"
            rss = metric(text, "poollab_consumer_rss_bytes", pool=pool, node=node)
            uss = metric(text, "poollab_consumer_uss_bytes", pool=pool, node=node)
            pss = metric(text, "poollab_consumer_pss_bytes", pool=pool, node=node)
            assert rss and uss and pss and 10 * 2**20 < uss <= pss <= rss, (pool, rss, uss)
            assert metric(text, "poollab_consumer_processes", pool=pool, node=node) == 1
            cores = metric(text, "poollab_consumer_cpu_cores", pool=pool, node=node)
            assert cores is not None and cores >= 0
        assert metric(text, "poollab_job_latency_seconds_bucket", pool="threads", le="+Inf") == 30

        app[STORE_KEY].flush()
        run_dir = app[STORE_KEY].directory
        rows = [json.loads(line) for line in (run_dir / "jobs.jsonl").read_text().splitlines()]
        by_id = {row["id"]: row for row in rows}
        assert set(ok_ids + bad_ids + solo_ids) <= set(by_id)
        assert all(by_id[i]["pool"] == "threads" for i in ok_ids)
        assert all(by_id[i]["status"] == "FAILURE" for i in bad_ids)
        row = by_id[ok_ids[0]]
        assert row["sent"] <= row["started"] <= row["finished"]
        samples = (run_dir / "samples.jsonl").read_text().splitlines()
        assert {json.loads(s)["pool"] for s in samples} >= {"threads", "solo"}

        runs = await (await http.get("/runs")).json()
        assert runs["current"]["run"] == run_dir.name
        created = await http.post("/runs", params={"name": "second"})
        assert created.status == 201 and (await created.json())["run"] == "second"
        assert (await http.post("/runs", params={"name": "../up"})).status == 422


def test_poollab_serve_collector_answers_and_stops_on_sigterm(
    redis_url: str, tmp_path: Path
) -> None:
    (port,) = free_ports(1)
    env = {
        **os.environ,
        "POOLLAB_BROKER_URL": redis_url,
        "POOLLAB_COLLECTOR_DATA_DIR": str(tmp_path / "data"),
    }
    process = subprocess.Popen(
        [POOLLAB, "serve", "collector", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        health: dict[str, object] = {}
        while time.monotonic() < deadline:
            assert process.poll() is None
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    health = json.loads(r.read())
                    break
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        assert health.get("status") == "ok" and health.get("service") == "collector"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            assert r.headers["Content-Type"].startswith("text/plain")
            assert b"poollab_results_failed_total 0.0" in r.read()
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == 0, output
    assert list((tmp_path / "data").glob("*/run.json"))


def _sample(pid: int, failed: int, t: float) -> Sample:
    return Sample(t, "gevent", "gevent@h", pid, 1, 100, 50, 1.0, 0.5, 10, failed, 0)


def test_failures_count_up_across_consumer_restarts_and_stale_nodes_go() -> None:
    metrics = CollectorMetrics()
    now = time.time()
    for sample in (_sample(1, 0, now), _sample(1, 3, now), _sample(1, 5, now),
                   _sample(2, 1, now), _sample(2, 2, now)):  # fmt: skip
        metrics.observe_sample(sample)
    # 5 before the restart (pid 1), then 2 more from the new process (pid 2)
    assert metrics.failed.labels("gevent")._value.get() == 7
    assert metrics.forget_stale(now + STALE_AFTER_S + 1) == ["gevent@h"]
    exposition = metrics.registry.get_sample_value(
        "poollab_consumer_rss_bytes", {"pool": "gevent", "node": "gevent@h"}
    )
    assert exposition is None
