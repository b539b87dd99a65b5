"""The producer's HTTP API on real HTTP and a real Redis: accepted jobs, refused input, 503."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from poollab.celery_config import make_client
from poollab.producer.app import create_app
from poollab.producer.publish import BATCH, issued_key
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
    # numbers are strict JSON numbers, for count and for the params of every kind alike
    ({"pool": "solo", "kind": "noop", "count": True}, 422, "count"),
    ({"pool": "solo", "kind": "noop", "count": "3"}, 422, "count"),
    ({"pool": "solo", "kind": "noop", "count": 2.0}, 422, "count"),
    ({"pool": "solo", "kind": "sleep", "params": {"ms": True}}, 422, "params.ms"),
    ({"pool": "solo", "kind": "sleep", "params": {"ms": "5"}}, 422, "params.ms"),
    ({"pool": "solo", "kind": "sleep", "params": {"ms": 5.0}}, 422, "params.ms"),
    ({"pool": "solo", "kind": "cpu", "params": {"n": False}}, 422, "params.n"),
    (
        {"pool": "solo", "kind": "io", "params": {"ms": 1, "jitter_ms": True}},
        422,
        "params.jitter_ms",
    ),
    (
        {"pool": "solo", "kind": "io", "params": {"ms": 1, "fail_rate": True}},
        422,
        "params.fail_rate",
    ),
    (
        {"pool": "solo", "kind": "io", "params": {"ms": 1, "fail_rate": "0.5"}},
        422,
        "params.fail_rate",
    ),
    ({"pool": "solo", "kind": "io", "params": {"ms": 1, "bytes": True}}, 422, "params.bytes"),
    ({"pool": "solo", "kind": "mixed", "params": {"n": 1, "ms": True}}, 422, "params.ms"),
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


EVERY_ERROR: list[tuple[Any, list[str]]] = [
    # the request's own fields, then the params of the kind it names
    (
        {"pool": "fork", "kind": "sleep", "params": {"ms": True}, "count": 0},
        ["pool", "count", "params.ms"],
    ),
    # the count over its cap and a bad param
    ({"pool": "solo", "kind": "cpu", "params": {"n": "x"}, "count": 10_001}, ["count", "params.n"]),
    # two bad params of one kind; the producer's cap on n (below the catalogue's) as well
    (
        {"pool": "solo", "kind": "mixed", "params": {"n": 60_000_000, "ms": 10**9}},
        ["params.ms", "params.n"],
    ),
    (
        {"pool": "solo", "kind": "io", "params": {"ms": -1, "bytes": True, "y": 1}},
        ["params.ms", "params.bytes", "params.y"],
    ),
    ({"pool": "solo", "kind": "noop", "count": "3", "extra": 1}, ["count", "extra"]),
]  # fmt: skip


@pytest.mark.parametrize(("body", "fields"), EVERY_ERROR)
async def test_every_bad_field_is_listed_and_the_first_is_named(
    api: tuple[str, ClientSession], redis_url: str, body: Any, fields: list[str]
) -> None:
    base, session = api
    async with session.post(f"{base}/jobs", json=body) as response:
        assert response.status == 422
        error = await response.json()
    assert [e["field"] for e in error["errors"]] == fields, error
    assert all(isinstance(e["message"], str) and e["message"] for e in error["errors"])
    assert error["field"] == fields[0]
    assert queue_lengths(redis_url) == dict.fromkeys(ALL_POOLS, 0)


async def test_ints_for_a_float_and_numbers_at_their_bounds_are_accepted(
    api: tuple[str, ClientSession], redis_url: str
) -> None:
    base, session = api
    body = {"pool": "solo", "kind": "io", "params": {"ms": 0, "fail_rate": 1, "bytes": 0}}
    async with session.post(f"{base}/jobs", json=body) as response:
        assert response.status == 202, await response.text()
    assert queue_lengths(redis_url)["solo"] == 1


async def test_an_id_never_issued_is_404_and_an_issued_one_is_pending_until_it_has_a_result(
    api: tuple[str, ClientSession], redis_url: str
) -> None:
    base, session = api
    unknown = str(uuid.uuid4())
    async with session.get(f"{base}/jobs/{unknown}") as response:
        assert response.status == 404
        error = await response.json()
    assert error["id"] == unknown and error["field"] == "id", error
    assert error["errors"][0]["field"] == "id" and unknown in error["errors"][0]["message"]

    body = {"pool": "solo", "kind": "noop", "params": {"x": 7}, "count": 3}
    async with session.post(f"{base}/jobs", json=body) as response:
        ids = (await response.json())["ids"]
    for task_id in ids:
        async with session.get(f"{base}/jobs/{task_id}") as response:
            assert response.status == 200
            assert (await response.json())["state"] == "PENDING"
    # remembered for as long as results are kept
    settings = Settings(broker_url=redis_url)
    client = redis.Redis.from_url(redis_url)
    ttls = [client.ttl(issued_key(task_id)) for task_id in ids]
    assert all(settings.result_expires - 60 < ttl <= settings.result_expires for ttl in ttls)

    # a job with a result is found by its result, also once its record of issue expired
    client.delete(issued_key(ids[0]))
    app = make_client("test-results", settings)
    app.backend.store_result(ids[0], {"value": 7, "timings": {}}, "SUCCESS")
    async with session.get(f"{base}/jobs/{ids[0]}") as response:
        assert response.status == 200
        job = await response.json()
    assert (job["state"], job["result"]) == ("SUCCESS", 7)
    client.delete(issued_key(ids[1]))
    async with session.get(f"{base}/jobs/{ids[1]}") as response:
        assert response.status == 404
    client.close()


async def test_a_large_count_is_remembered_in_the_publishing_pipelines(
    api: tuple[str, ClientSession], redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10,000 ids recorded in the pipelines that publish their jobs: no round trip of their own.

    A pipeline per batch of 500 jobs: their 500 records, then one LPUSH of their messages
    (the first also declares the queue's bindings, two SADDs).
    """
    executed: list[int] = []
    execute = redis.client.Pipeline.execute

    def counted(self: redis.client.Pipeline, *args: Any, **kwargs: Any) -> Any:
        executed.append(len(self.command_stack))
        return execute(self, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", counted)
    base, session = api
    client = redis.Redis.from_url(redis_url)
    body = {"pool": "solo", "kind": "noop", "count": 10_000}
    async with session.post(f"{base}/jobs", json=body) as response:
        assert response.status == 202
        ids = (await response.json())["ids"]
    batches = 10_000 // BATCH
    assert executed == [BATCH + 1 + 2] + [BATCH + 1] * (batches - 1), executed
    # counted in this test's own database (the server's command counters are shared with
    # other tests' processes, whose hooks write liveness keys)
    issued = {key for key in client.scan_iter(match=issued_key("*"), count=1000)}
    assert issued == {issued_key(task_id).encode() for task_id in ids}
    client.close()


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
