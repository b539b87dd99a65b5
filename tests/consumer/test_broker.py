"""The Redis side on a real Redis: taking, holding, acking and restoring as kombu does.

kombu's own channel is the other party: it restores what this consumer held, and this
consumer restores what kombu held, so either can clean up after the other's crash.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from kombu import Connection

from poollab.consumer import layout, protocol
from poollab.consumer.broker import Broker, Completion, make_client
from poollab.launcher.redis_server import RedisServer

QUEUE = "asyncio"


@pytest.fixture
async def broker(redis_url: str) -> AsyncIterator[Broker]:
    b = Broker(make_client(redis_url, 8), QUEUE, result_expires=3600)
    yield b
    await b.close()


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def kombu_conn(redis_url: str) -> Iterator[Connection]:
    conn = Connection(redis_url, transport_options={"visibility_timeout": 0})
    yield conn
    conn.release()


def _push(r: redis.Redis, message: dict[str, Any], key: str = QUEUE) -> None:
    r.lpush(key, protocol.encode(message))


async def test_take_holds_each_message_in_kombus_unacked_layout(
    broker: Broker, client: Celery, sync_redis: redis.Redis
) -> None:
    ids = [client.send_task("poollab.noop", kwargs={"x": i}, queue=QUEUE).id for i in range(3)]
    before = time.time()
    taken, waiting = await broker.take(10)
    after = time.time()
    assert waiting == 0
    assert [protocol.parse(t.raw).task_id for t in taken] == ids  # FIFO
    assert all(t.held for t in taken)
    assert sync_redis.llen(QUEUE) == 0
    for item in taken:
        tag = json.loads(item.raw)["properties"]["delivery_tag"]
        held = sync_redis.hget(layout.UNACKED, tag)
        assert held is not None
        assert json.loads(held) == [json.loads(item.raw), "", QUEUE]
        score = sync_redis.zscore(layout.UNACKED_INDEX, tag)
        assert score is not None and before - 0.01 <= score <= after + 0.01


async def test_take_empties_priority_lists_in_kombus_brpop_order(
    broker: Broker, sync_redis: redis.Redis
) -> None:
    low = protocol.task_message("poollab.noop", {"x": "low"}, queue=QUEUE, priority=3)
    first = protocol.task_message("poollab.noop", {"x": 1}, queue=QUEUE)
    second = protocol.task_message("poollab.noop", {"x": 2}, queue=QUEUE)
    _push(sync_redis, low, layout.queue_key(QUEUE, 3))
    _push(sync_redis, first)
    _push(sync_redis, second)
    taken, waiting = await broker.take(2)
    assert [protocol.parse(t.raw).kwargs["x"] for t in taken] == [1, 2]
    assert waiting == 1  # the low-priority one, in its own list
    taken, waiting = await broker.take(5)
    assert [protocol.parse(t.raw).kwargs["x"] for t in taken] == ["low"]
    assert waiting == 0
    assert await broker.take(5) == ([], 0)


async def test_garbage_is_taken_but_never_held(broker: Broker, sync_redis: redis.Redis) -> None:
    untagged = protocol.task_message("poollab.noop", {}, queue=QUEUE)
    del untagged["properties"]["delivery_tag"]
    sync_redis.lpush(QUEUE, b"garbage{", b"[]", protocol.encode(untagged))
    taken, _ = await broker.take(10)
    assert len(taken) == 3 and not any(t.held for t in taken)
    assert sync_redis.hlen(layout.UNACKED) == 0


async def test_kombu_restores_what_the_consumer_held(
    broker: Broker, client: Celery, kombu_conn: Connection, sync_redis: redis.Redis
) -> None:
    task_id = client.send_task("poollab.noop", kwargs={"x": 1}, queue=QUEUE).id
    [taken], _ = await broker.take(1)
    # a kombu worker's periodic sweep, visibility timeout 0: everything held is visible again
    kombu_conn.default_channel.qos.restore_visible(num=10, interval=1)
    assert sync_redis.hlen(layout.UNACKED) == 0
    assert sync_redis.zcard(layout.UNACKED_INDEX) == 0
    raw = sync_redis.rpop(QUEUE)
    assert raw is not None
    again = json.loads(raw)
    assert again["headers"]["id"] == task_id and again["headers"]["redelivered"] is True
    assert (
        again["properties"]["delivery_tag"] == json.loads(taken.raw)["properties"]["delivery_tag"]
    )


async def test_consumer_restores_what_kombu_held(
    broker: Broker, client: Celery, kombu_conn: Connection, sync_redis: redis.Redis
) -> None:
    task_id = client.send_task("poollab.noop", kwargs={"x": 1}, queue=QUEUE).id
    message = kombu_conn.default_channel.basic_get(QUEUE, no_ack=False)
    assert message is not None and sync_redis.hlen(layout.UNACKED) == 1
    # that kombu worker died here: its message waits in unacked for the visibility timeout
    assert await broker.restore_visible(visibility_timeout=0) == 1
    assert sync_redis.hlen(layout.UNACKED) == 0
    again = kombu_conn.default_channel.basic_get(QUEUE, no_ack=True)
    assert again is not None
    assert again.headers["id"] == task_id and again.headers["redelivered"] is True
    assert again.delivery_info["redelivered"] is True


async def test_restore_waits_for_the_visibility_timeout(
    broker: Broker, client: Celery, sync_redis: redis.Redis
) -> None:
    client.send_task("poollab.noop", queue=QUEUE)
    await broker.take(1)
    assert await broker.restore_visible(visibility_timeout=60) == 0
    assert sync_redis.hlen(layout.UNACKED) == 1


async def test_restore_backs_off_while_another_sweeper_holds_kombus_mutex(
    broker: Broker, client: Celery, sync_redis: redis.Redis
) -> None:
    client.send_task("poollab.noop", queue=QUEUE)
    await broker.take(1)
    sync_redis.set(layout.UNACKED_MUTEX, "someone-else", ex=30)
    assert await broker.restore_visible(visibility_timeout=0) == 0
    assert sync_redis.hlen(layout.UNACKED) == 1
    sync_redis.delete(layout.UNACKED_MUTEX)
    assert await broker.restore_visible(visibility_timeout=0) == 1


async def test_restore_returns_a_message_to_its_priority_list(
    broker: Broker, sync_redis: redis.Redis
) -> None:
    message = protocol.task_message("poollab.noop", {}, queue=QUEUE, priority=7)
    _push(sync_redis, message, layout.queue_key(QUEUE, 7))
    await broker.take(1)
    assert await broker.restore_visible(visibility_timeout=0) == 1
    assert sync_redis.llen(layout.queue_key(QUEUE, 7)) == 1 == sync_redis.llen("asyncio\x06\x166")


async def test_write_stores_publishes_then_acks(
    broker: Broker, redis_url: str, sync_redis: redis.Redis
) -> None:
    message = protocol.task_message("poollab.noop", {"x": 1}, queue=QUEUE)
    _push(sync_redis, message)
    [taken], _ = await broker.take(1)
    task_id, tag = message["headers"]["id"], message["properties"]["delivery_tag"]
    meta = protocol.success_meta(task_id, {"value": 1})
    pubsub = sync_redis.pubsub()
    pubsub.subscribe(layout.task_meta_key(task_id))
    assert pubsub.get_message(timeout=1) is not None  # the subscribe confirmation
    await broker.write([Completion(task_id, meta, tag)], [("/0.celeryev/task.multi", "{}")])
    assert sync_redis.get(layout.task_meta_key(task_id)) == meta.encode()
    assert 3590 < sync_redis.ttl(layout.task_meta_key(task_id)) <= 3600
    published = pubsub.get_message(timeout=1)
    assert published is not None and published["data"] == meta.encode()
    pubsub.close()
    assert sync_redis.hlen(layout.UNACKED) == 0 and sync_redis.zcard(layout.UNACKED_INDEX) == 0
    assert taken.held


async def test_wait_sees_a_message_without_taking_it(
    broker: Broker, sync_redis: redis.Redis
) -> None:
    assert await broker.wait(0.1) is False
    for x in range(3):
        _push(sync_redis, protocol.task_message("poollab.noop", {"x": x}, queue=QUEUE))
    before = sync_redis.lrange(QUEUE, 0, -1)
    assert await broker.wait(1.0) is True
    assert sync_redis.lrange(QUEUE, 0, -1) == before


async def test_declare_binds_the_queue_as_celery_does(
    broker: Broker, redis_url: str, sync_redis: redis.Redis
) -> None:
    await broker.declare()
    keys = ("_kombu.binding.asyncio", "_kombu.binding_permanent.asyncio")
    ours = {key: sync_redis.smembers(key) for key in keys}
    sync_redis.flushdb()
    # a fresh process: kombu remembers declarations per process
    script = (
        "import sys; from tests.consumer.conftest import celery_client; "
        "celery_client(sys.argv[1]).send_task('poollab.noop', queue='asyncio')"
    )
    subprocess.run([sys.executable, "-c", script, redis_url], check=True, timeout=60)
    celerys = {key: sync_redis.smembers(key) for key in keys}
    assert ours == celerys and all(ours.values())


async def test_results_go_to_a_separate_backend_and_acks_stay_on_the_broker(
    redis_url: str, sync_redis: redis.Redis, redis_server: RedisServer
) -> None:
    backend_url = redis_server.url + "/1"
    backend_sync = redis.Redis.from_url(backend_url)
    broker = Broker(make_client(redis_url, 4), QUEUE, 60, backend=make_client(backend_url, 4))
    try:
        message = protocol.task_message("poollab.noop", {"x": 1}, queue=QUEUE)
        _push(sync_redis, message)
        await broker.take(1)
        task_id, tag = message["headers"]["id"], message["properties"]["delivery_tag"]
        meta = protocol.success_meta(task_id, 1)
        await broker.write([Completion(task_id, meta, tag)], [])
        assert backend_sync.get(layout.task_meta_key(task_id)) == meta.encode()
        assert sync_redis.get(layout.task_meta_key(task_id)) is None
        assert sync_redis.hlen(layout.UNACKED) == 0
    finally:
        await broker.close()
        backend_sync.flushdb()
        backend_sync.close()
