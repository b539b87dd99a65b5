"""The producer's HTTP API on real HTTP and a real Redis: accepted jobs, refused input, 503."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from poollab.producer.app import create_app
from poollab.settings import ALL_POOLS, Settings
from tests.conftest import free_ports


@pytest.fixture
async def api(redis_url: str) -> AsyncIterator[tuple[str, ClientSession]]:
    server = TestServer(create_app(Settings(broker_url=redis_url)), host="127.0.0.1")
    await server.start_server()
    async with ClientSession() as session:
        yield f"http://127.0.0.1:{server.port}", session
    await server.close()


def queue_lengths(redis_url: str) -> dict[str, int]:
    client = redis.Redis.from_url(redis_url)
    try:
        return {pool: int(client.llen(pool)) for pool in ALL_POOLS}
    finally:
        client.close()


async def test_post_jobs_publishes_count_messages_with_the_sent_stamp(
    api: tuple[str, ClientSession], redis_url: str
) -> None:
    base, session = api
    body = {"pool": "gevent", "kind": "sleep", "params": {"ms": 5}, "count": 3}
    async with session.post(f"{base}/jobs", json=body) as response:
        assert response.status == 202
        ids = (await response.json())["ids"]
    assert len(set(ids)) == 3
    assert queue_lengths(redis_url)["gevent"] == 3
    raw = redis.Redis.from_url(redis_url).lindex("gevent", 0)
    assert raw is not None
    message = json.loads(raw)
    assert message["headers"]["task"] == "poollab.sleep"
    assert message["headers"]["poollab_sent"] > 0
    assert message["content-type"] == "application/json"

    async with session.get(f"{base}/jobs/{ids[0]}") as response:
        assert response.status == 200
        assert (await response.json())["state"] == "PENDING"


BAD_REQUESTS: list[tuple[Any, int, str]] = [
    ({"pool": "fork", "kind": "noop"}, 422, "pool"),
    ({"pool": "solo", "kind": "teleport"}, 422, "kind"),
    ({"pool": "solo", "kind": "sleep"}, 422, "params.ms"),
    ({"pool": "solo", "kind": "sleep", "params": {"ms": -1}}, 422, "params.ms"),
    ({"pool": "solo", "kind": "sleep", "params": {"ms": 10**9}}, 422, "params.ms"),
    ({"pool": "solo", "kind": "cpu", "params": {"n": 10**12}}, 422, "params.n"),
    ({"pool": "solo", "kind": "cpu", "params": {"n": "lots"}}, 422, "params.n"),
    ({"pool": "solo", "kind": "noop", "count": 0}, 422, "count"),
    ({"pool": "solo", "kind": "noop", "count": 10_001}, 422, "count"),
    ({"pool": "solo", "kind": "noop", "extra": 1}, 422, "extra"),
    ({"pool": "solo", "kind": "io", "params": {"ms": 1, "fail_rate": 3}}, 422, "params.fail_rate"),
    ([1, 2, 3], 422, "body"),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD_REQUESTS)
async def test_bad_input_is_refused_with_the_field_named_and_nothing_queued(
    api: tuple[str, ClientSession], redis_url: str, body: Any, status: int, field: str
) -> None:
    base, session = api
    async with session.post(f"{base}/jobs", json=body) as response:
        assert response.status == status
        error = await response.json()
    assert error["field"] == field, error
    assert queue_lengths(redis_url) == dict.fromkeys(ALL_POOLS, 0)


async def test_non_json_and_oversized_bodies_are_refused(
    api: tuple[str, ClientSession], redis_url: str
) -> None:
    base, session = api
    async with session.post(f"{base}/jobs", data=b"{not json") as response:
        assert response.status == 400
        assert (await response.json())["field"] == "body"
    huge = {"pool": "solo", "kind": "noop", "params": {"x": "a" * 200_000}}
    async with session.post(f"{base}/jobs", json=huge) as response:
        assert response.status == 413
        assert (await response.json())["field"] == "body"
    async with session.get(f"{base}/jobs/not-a-uuid") as response:
        assert response.status == 400
        assert (await response.json())["field"] == "id"
    async with session.get(f"{base}/nowhere") as response:
        assert response.status == 404
        assert "error" in await response.json()
    assert queue_lengths(redis_url) == dict.fromkeys(ALL_POOLS, 0)


async def test_openapi_document_describes_the_endpoints(api: tuple[str, ClientSession]) -> None:
    base, session = api
    async with session.get(f"{base}/openapi.json") as response:
        assert response.status == 200
        document = await response.json()
    assert {"/jobs", "/jobs/{id}", "/healthz"} <= set(document["paths"])
    pools = document["components"]["schemas"]["JobRequest"]["properties"]["pool"]["enum"]
    assert set(pools) == set(ALL_POOLS)


async def test_a_broker_that_is_down_answers_503_with_retry_after() -> None:
    (dead_port,) = free_ports(1)
    app = create_app(Settings(broker_url=f"redis://127.0.0.1:{dead_port}/0"))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with ClientSession() as session:
            body = {"pool": "solo", "kind": "noop", "count": 2}
            async with session.post(f"http://127.0.0.1:{server.port}/jobs", json=body) as response:
                assert response.status == 503
                assert int(response.headers["Retry-After"]) > 0
                assert (await response.json())["ids"] == []
            async with session.get(f"http://127.0.0.1:{server.port}/healthz") as response:
                assert response.status == 503
    finally:
        await server.close()
