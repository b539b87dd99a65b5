"""The publisher: messages as ``send_task`` lays them out on Redis, in pipelined batches."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery

from poollab import jobs
from poollab.celery_config import make_client
from poollab.consumer import layout
from poollab.launcher.lab import Lab
from poollab.launcher.redis_server import RedisServer, free_port
from poollab.producer.publish import (
    BrokerUnavailable,
    issued_key,
    publish,
    publish_with_send_task,
    wait_for,
)
from poollab.settings import Settings

# what differs between any two messages, whoever writes them
RANDOM_HEADERS = {"id", "root_id", "origin", jobs.SENT_HEADER}
RANDOM_PROPERTIES = {"correlation_id", "delivery_tag"}


@pytest.fixture
def app(redis_url: str) -> Iterator[Celery]:
    client = make_client("tests", Settings(broker_url=redis_url))
    yield client
    client.close()


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _everything(r: redis.Redis) -> dict[bytes, Any]:
    """Every key of the database with its type and, for a list, its length."""
    return {
        key: (r.type(key), r.llen(key) if r.type(key) == b"list" else r.smembers(key))
        for key in r.keys("*")
    }


def _take(r: redis.Redis, key: str) -> dict[str, Any]:
    raw = r.rpop(key)
    assert isinstance(raw, bytes), key
    message: dict[str, Any] = json.loads(raw)
    return message


def _assert_same_but_random_fields(ours: dict[str, Any], celery: dict[str, Any]) -> None:
    assert list(ours) == list(celery)
    for name in ours:
        if name not in ("headers", "properties"):
            assert ours[name] == celery[name], name
    assert list(ours["headers"]) == list(celery["headers"])
    for name, value in ours["headers"].items():
        if name not in RANDOM_HEADERS:
            assert value == celery["headers"][name], name
    assert list(ours["properties"]) == list(celery["properties"])
    for name, value in ours["properties"].items():
        if name not in RANDOM_PROPERTIES:
            assert value == celery["properties"][name], name
    # the per-message fields are there, of the same kind, and tied together as Celery ties them
    for message in (ours, celery):
        headers, properties = message["headers"], message["properties"]
        assert headers["id"] == headers["root_id"] == properties["correlation_id"]
        assert isinstance(headers[jobs.SENT_HEADER], float)
        assert isinstance(properties["delivery_tag"], str) and properties["delivery_tag"]
        assert isinstance(headers["origin"], str) and headers["origin"]
    assert ours["headers"]["id"] != celery["headers"]["id"]
    assert ours["properties"]["delivery_tag"] != celery["properties"]["delivery_tag"]


@pytest.mark.parametrize("priority", [None, 0, 3, 7, 9])
@pytest.mark.parametrize(
    ("kind", "params"),
    [("noop", {"x": {"hello": ["world", 1, 2.5, None, True]}}), ("sleep", {"ms": 5})],
)
def test_messages_are_what_send_task_writes_field_by_field(
    app: Celery, r: redis.Redis, kind: str, params: dict[str, Any], priority: int | None
) -> None:
    key = layout.queue_key("asyncio", priority or 0)
    publish_with_send_task(app, "asyncio", kind, params, 1, remember=False, priority=priority)
    by_celery = _everything(r)
    celery = _take(r, key)
    r.flushdb()
    publish(app, "asyncio", kind, params, 1, remember=False, priority=priority)
    # the same list (the queue's, or its priority sub-list), and the queue's bindings, which
    # send_task declares once per connection
    ours_keys = _everything(r)
    assert {k: v for k, v in ours_keys.items() if v[0] == b"list"} == {
        k: v for k, v in by_celery.items() if v[0] == b"list"
    }
    binding = (b"set", {layout.binding_member("asyncio").encode()})
    assert ours_keys[(layout.BINDING % "asyncio").encode()] == binding
    assert ours_keys[(layout.BINDING_PERMANENT % "asyncio").encode()] == binding
    assert {k: v for k, v in by_celery.items() if v[0] == b"set"}.items() <= ours_keys.items()
    ours = _take(r, key)
    _assert_same_but_random_fields(ours, celery)
    assert json.loads(base64.b64decode(ours["body"])) == [
        [],
        params,
        {"callbacks": None, "errbacks": None, "chain": None, "chord": None},
    ]


def test_percent_signs_and_format_fields_in_params_are_kept(app: Celery, r: redis.Redis) -> None:
    params = {"x": {"%(id)s": "100% %s %(id)s %%", "q": '"quoted"'}}
    publish(app, "asyncio", "noop", params, 1, remember=False)
    message = _take(r, "asyncio")
    assert json.loads(base64.b64decode(message["body"]))[1] == params
    assert message["headers"]["kwargsrepr"] == repr(params)


def test_batches_keep_the_order_and_every_id_is_remembered_with_an_expiry(
    app: Celery, r: redis.Redis
) -> None:
    before = time.time()
    ids = publish(app, "threads", "noop", {}, 1234, batch=500)
    assert len(ids) == len(set(ids)) == 1234
    assert r.llen("threads") == 1234
    # BRPOP takes from the right: the first published is the first taken
    taken = [_take(r, "threads") for _ in ids]
    assert [m["headers"]["id"] for m in taken] == ids
    sent = [m["headers"][jobs.SENT_HEADER] for m in taken]
    assert before <= sent[0] and sent == sorted(sent) and sent[-1] <= time.time()
    assert len({m["properties"]["delivery_tag"] for m in taken}) == len(ids)
    expires = int(app.backend.expires)
    for task_id in ids[:: len(ids) // 10] + ids[-1:]:
        assert r.get(issued_key(task_id)) == b"1"
        assert 0 < r.ttl(issued_key(task_id)) <= expires


def test_ids_are_remembered_in_a_result_store_of_its_own(redis_url: str) -> None:
    results_url = redis_url.rsplit("/", 1)[0] + "/3"
    app = make_client("tests", Settings(broker_url=redis_url, result_backend=results_url))
    results = redis.Redis.from_url(results_url)
    try:
        ids = publish(app, "solo", "noop", {}, 3)
        assert all(results.exists(issued_key(task_id)) for task_id in ids)
        assert redis.Redis.from_url(redis_url).llen("solo") == 3
    finally:
        results.flushdb()
        results.close()
        app.close()


def test_a_broker_that_is_down_raises_broker_unavailable_quickly() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    app = make_client("tests", Settings(broker_url=url))
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as caught:
        publish(app, "solo", "noop", {}, 10, remember=False)
    assert caught.value.published == []
    assert time.monotonic() - started < 5
    app.close()


# --- a stock Celery worker per pool, and the asyncio consumer, run them -------------------


@pytest.fixture(scope="module")
def lab_client(running_lab: Lab) -> Celery:
    return make_client("tests", running_lab.settings)


def test_every_pool_runs_jobs_published_this_way(running_lab: Lab, lab_client: Celery) -> None:
    pools = sorted({run.service.pool for run in running_lab.running.values() if run.service.pool})
    assert "asyncio" in pools and "prefork" in pools
    params: dict[str, dict[str, Any]] = {
        "noop": {"x": {"hello": ["world", 1]}},
        "sleep": {"ms": 5},
        "cpu": {"n": 2_000},
    }
    sent: dict[str, tuple[str, str]] = {}
    before = time.time()
    for pool in pools:
        for kind, kind_params in params.items():
            # batches of 7: several pipelines per call
            for task_id in publish(lab_client, pool, kind, kind_params, 15, batch=7):
                sent[task_id] = (pool, kind)
    metas = wait_for(lab_client, list(sent), timeout=120)
    assert set(metas) == set(sent)
    for task_id, (pool, kind) in sent.items():
        meta = metas[task_id]
        assert meta["status"] == "SUCCESS", (pool, kind, meta)
        result = meta["result"]
        assert result["value"] == jobs.expected_value(kind, params[kind]), (pool, kind)
        assert result["pool"] == pool
        assert before <= result["timings"]["sent"] <= result["timings"]["started"]


def test_publishing_after_redis_restarted_needs_no_retry() -> None:
    """A pooled connection the old server closed is replaced, not resent on: no duplicates."""
    server = RedisServer().start()
    app = make_client("tests", Settings(broker_url=server.url + "/0"))
    try:
        assert len(publish(app, "solo", "noop", {}, 3, remember=False)) == 3
        port = server.port
        server.stop()
        with pytest.raises(BrokerUnavailable):
            publish(app, "solo", "noop", {}, 3, remember=False)
        server = RedisServer(port=port).start()
        ids = publish(app, "solo", "noop", {}, 3, remember=False)
        r = redis.Redis.from_url(server.url + "/0")
        assert r.llen("solo") == 3
        assert [_take(r, "solo")["headers"]["id"] for _ in ids] == ids
        r.close()
        # restarted again while the connection sat in the pool, nothing sent in between
        server.stop()
        server = RedisServer(port=port).start()
        ids = publish(app, "solo", "noop", {}, 2, remember=False)
        r = redis.Redis.from_url(server.url + "/0")
        assert r.llen("solo") == 2
        r.close()
    finally:
        app.close()
        server.stop()
