"""The upstream service over real HTTP: latency as asked, errors as asked, many connections."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from poollab.services.upstream import create_app


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    server = TestServer(create_app(), host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}"
    await server.close()


async def test_delay_answers_after_the_latency_with_the_bytes_asked(upstream: str) -> None:
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        async with session.get(f"{upstream}/delay?ms=200&bytes=70000") as response:
            body = await response.read()
        elapsed = time.perf_counter() - started
    assert response.status == 200
    assert len(body) == 70000
    assert elapsed >= 0.2


async def test_fail_rate_one_always_fails_and_zero_never(upstream: str) -> None:
    async with aiohttp.ClientSession() as session:
        for rate, status in (("1", 500), ("0", 200)):
            for _ in range(5):
                async with session.get(f"{upstream}/delay?ms=0&fail_rate={rate}") as response:
                    assert response.status == status


@pytest.mark.parametrize(
    ("query", "field"),
    [("ms=-1", "ms"), ("ms=abc", "ms"), ("ms=1&fail_rate=2", "fail_rate"), ("bytes=x", "bytes")],
)
async def test_bad_query_is_a_400_naming_the_field(upstream: str, query: str, field: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{upstream}/delay?{query}") as response,
    ):
        assert response.status == 400
        assert (await response.json())["field"] == field


async def test_a_thousand_concurrent_connections_overlap(upstream: str) -> None:
    latency_s, connections = 1.0, 1000
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> int:
            async with session.get(f"{upstream}/delay?ms={int(latency_s * 1000)}") as response:
                await response.read()
                return response.status

        started = time.perf_counter()
        statuses = await asyncio.gather(*(one() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    assert statuses == [200] * connections
    # one at a time would take 1,000 s; held together they take about one latency
    assert elapsed < connections * latency_s / 20
