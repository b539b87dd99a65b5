"""The live page: served from the package, self-contained, and filled in by a real browser."""

from __future__ import annotations

import asyncio
import html
import re
import threading
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from poollab import chromium
from poollab.celery_config import make_client
from poollab.launcher.lab import Lab
from poollab.producer.publish import publish
from poollab.services.collector.app import CollectorSettings, create_app
from poollab.services.collector.page import ASSETS, read_static
from poollab.settings import ALL_POOLS, Settings

# what a person watching compares first: throughput and memory
FILLED_FIELDS = ("jobs_per_s", "rss_bytes", "uss_bytes", "cpu_cores", "processes")


async def test_the_page_and_its_assets_come_from_the_package_and_nothing_else(
    redis_url: str, tmp_path: Path
) -> None:
    app = create_app(Settings(broker_url=redis_url), CollectorSettings(data_dir=tmp_path))
    async with TestClient(TestServer(app)) as http:
        page = await http.get("/")
        assert page.status == 200 and page.content_type == "text/html"
        assert "default-src 'none'" in page.headers["Content-Security-Policy"]
        text = await page.text()
        referenced = re.findall(r'(?:src|href)="([^"]+)"', text)
        assert sorted(referenced) == ["/static/live.css", "/static/live.js"]
        for name, kind in ASSETS.items():
            asset = await http.get(f"/static/{name}")
            assert asset.status == 200 and asset.content_type == kind
            assert await asset.read() == read_static(name)
        assert (await http.get("/static/../app.py")).status == 404
        assert (await http.get("/static/nothing.js")).status == 404
    script = read_static("live.js").decode()
    # the one URL the script fetches is the collector's own; the SVG namespace is a name
    assert re.findall(r"https?://[^\"']+", script) == ["http://www.w3.org/2000/svg"]
    assert re.findall(r"fetch\(\"([^\"]+)\"", script) == ["/api/pools"]
    for pool in ALL_POOLS:
        assert f'"{pool}"' in script


def _cells(dom: str, pool: str) -> dict[str, str]:
    found = re.findall(rf'<td data-pool="{pool}" data-field="(\w+)"[^>]*>([^<]*)</td>', dom)
    return {field: html.unescape(text) for field, text in found}


async def test_headless_chromium_shows_every_pool_filled_in_while_jobs_flow(
    running_lab: Lab, tmp_path: Path
) -> None:
    if chromium.find_chromium() is None:
        pytest.skip("no chromium on PATH (apt-get install -y chromium, or .ci/install-tools)")
    settings = running_lab.settings
    app = create_app(settings, CollectorSettings(data_dir=tmp_path / "collector"))
    client = make_client("tests-live-page", settings)
    stop = threading.Event()

    def keep_jobs_flowing() -> None:
        # a few short I/O jobs per pool at a time, so that every pool completes some
        # every second without a backlog building up
        while not stop.is_set():
            for pool in ALL_POOLS:
                publish(client, pool, "io", {"ms": 10}, 2)
            stop.wait(0.3)

    async with TestClient(TestServer(app)) as http:
        deadline = time.monotonic() + 30
        while (await http.get("/healthz")).status != 200:
            assert time.monotonic() < deadline, await (await http.get("/healthz")).text()
            await asyncio.sleep(0.2)
        flow = threading.Thread(target=keep_jobs_flowing, daemon=True)
        flow.start()
        try:
            pools: dict[str, dict[str, object]] = {}
            while time.monotonic() < deadline + 30:
                data = await (await http.get("/api/pools")).json()
                pools = data["pools"]
                # a chart line needs two points: wait until every pool's history has them
                history = data["history"]["pools"]
                drawn = all(
                    sum(v is not None for v in history.get(p, {}).get(name, [])) >= 3
                    for p in ALL_POOLS
                    for name in ("jobs_per_s", "uss_bytes")
                )
                if drawn and all(
                    pools[p]["jobs_per_s"] and pools[p]["uss_bytes"] for p in ALL_POOLS
                ):
                    break
                await asyncio.sleep(0.5)
            url = str(http.make_url("/"))
            dom = await asyncio.to_thread(chromium.dump_dom, url, 4000, 90.0)
        finally:
            stop.set()
            flow.join(30)
    body = re.search(r"<body[^>]*>", dom)
    assert body is not None and 'data-updates="0"' not in body.group(0), dom[:2000]
    assert "collector not answering" not in dom
    for pool in ALL_POOLS:
        cells = _cells(dom, pool)
        for field in FILLED_FIELDS:
            assert cells.get(field, "–") != "–", (pool, field, cells, pools[pool])
        assert float(cells["jobs_per_s"]) > 0, (pool, cells)
        assert cells["uss_bytes"].endswith(" MiB") and cells["rss_bytes"].endswith(" MiB")
        assert float(cells["uss_bytes"].split()[0]) > 10
    # the charts are drawn: a line per pool in each
    for chart in ("chart-jobs", "chart-uss"):
        svg = re.search(rf'<svg id="{chart}".*?</svg>', dom, re.S)
        assert svg is not None and svg.group(0).count("<polyline") >= len(ALL_POOLS), chart
