"""Queue figures per pool: kombu's lists and unacked hash, parsed, polled, and served."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import redis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from celery import Celery
from kombu import Connection

from poollab.consumer.layout import UNACKED, queue_key, queue_keys
from poollab.jobs import SENT_HEADER
from poollab.launcher.redis_server import RedisServer
from poollab.services.collector.app import CollectorSettings, create_app
from poollab.services.collector.queues import (
    QueuePoller,
    QueueStats,
    sent_at,
    unacked_queue,
)
from poollab.settings import ALL_POOLS, Settings
from tests.services.collector.test_app import metric


def _message(tag: str, sent: float | None = None, timestamp: float | None = None) -> str:
    headers: dict[str, object] = {"id": f"task-{tag}", "task": "poollab.noop"}
    if sent is not None:
        headers[SENT_HEADER] = sent
    properties: dict[str, object] = {"delivery_tag": tag, "priority": 0}
    if timestamp is not None:
        properties["timestamp"] = timestamp
    return json.dumps({"body": "", "headers": headers, "properties": properties})


def test_the_send_time_is_the_producers_stamp_else_the_messages_own_timestamp() -> None:
    assert sent_at(json.loads(_message("a", sent=100.5, timestamp=90.0))) == 100.5
    assert sent_at(json.loads(_message("a", timestamp=90.0))) == 90.0
    assert sent_at({"headers": {"timestamp": 80}}) == 80.0
    assert sent_at(json.loads(_message("a"))) is None
    # neither a bool nor a string nor NaN is a time
    assert sent_at({"headers": {SENT_HEADER: True}}) is None
    assert sent_at({"headers": {SENT_HEADER: "100"}, "properties": None}) is None
    assert sent_at({"headers": {SENT_HEADER: float("nan")}}) is None


def test_an_unacked_entry_is_counted_by_its_routing_key() -> None:
    message = json.loads(_message("t1"))
    assert unacked_queue(json.dumps([message, "", "gevent"])) == "gevent"
    assert unacked_queue(json.dumps([message, "gevent", "gevent"]).encode()) == "gevent"
    message["properties"]["delivery_info"] = {"exchange": "", "routing_key": "solo"}
    assert unacked_queue(json.dumps([message, "", ""])) == "solo"
    assert unacked_queue("not json") is None
    assert unacked_queue(json.dumps({"a": 1})) is None
    assert unacked_queue(json.dumps([{}, "", None])) is None


def _replies(
    poller: QueuePoller,
    lists: dict[str, tuple[int, str | None]],
    cursor: int = 0,
    unacked: dict[str, str] | None = None,
) -> list[object]:
    """What the pipeline answers, in the poller's order, for these list lengths and tails."""
    replies: list[object] = []
    for pool in poller.pools:
        for key in queue_keys(pool):
            length, tail = lists.get(key, (0, None))
            replies += [length, tail]
    replies.append((cursor, unacked or {}))
    return replies


def test_depth_sums_the_priority_lists_and_the_oldest_is_the_earliest_tail() -> None:
    poller = QueuePoller(("prefork", "solo"))
    now = 1000.0
    lists = {
        "prefork": (3, _message("a", sent=now - 4.0)),
        queue_key("prefork", 9): (2, _message("b", sent=now - 9.5)),
        "solo": (0, None),
    }
    stats = poller.read_replies(_replies(poller, lists), now)
    assert stats["prefork"] == QueueStats(jobs=5, oldest_age_s=9.5, unacked=0)
    assert stats["solo"] == QueueStats(jobs=0, oldest_age_s=0.0, unacked=0)
    # a stamp from a clock ahead of ours is no negative age
    lists = {"prefork": (1, _message("c", sent=now + 3))}
    assert poller.read_replies(_replies(poller, lists), now)["prefork"].oldest_age_s == 0.0


def test_a_message_without_a_send_time_ages_from_when_it_was_first_seen_waiting() -> None:
    poller = QueuePoller(("gevent",))
    lists = {"gevent": (1, _message("x"))}
    assert poller.read_replies(_replies(poller, lists), 500.0)["gevent"].oldest_age_s == 0.0
    assert poller.read_replies(_replies(poller, lists), 503.5)["gevent"].oldest_age_s == 3.5
    # another message at the tail starts its own clock
    lists = {"gevent": (1, _message("y"))}
    assert poller.read_replies(_replies(poller, lists), 504.0)["gevent"].oldest_age_s == 0.0
    # a tail that is not even JSON is told apart by its text
    lists = {"gevent": (1, "garbage")}
    poller.read_replies(_replies(poller, lists), 505.0)
    assert poller.read_replies(_replies(poller, lists), 506.0)["gevent"].oldest_age_s == 1.0


def test_unacked_counts_are_published_when_a_sweep_of_the_hash_completes() -> None:
    poller = QueuePoller(("prefork", "threads"), scan_count=2)
    message = json.loads(_message("m"))
    entry = {pool: json.dumps([message, "", pool]) for pool in ("prefork", "threads", "x")}
    # first step of a sweep: nothing complete yet, so unknown
    first = poller.read_replies(
        _replies(poller, {}, cursor=7, unacked={"t1": entry["prefork"], "t2": entry["x"]}), 1.0
    )
    assert first["prefork"].unacked is None
    # the sweep ends; an entry returned twice (Redis rehashing) counts once
    done = poller.read_replies(
        _replies(poller, {}, cursor=0,
                 unacked={"t1": entry["prefork"], "t3": entry["threads"]}), 2.0,
    )  # fmt: skip
    assert (done["prefork"].unacked, done["threads"].unacked) == (1, 1)
    # the next sweep starts afresh
    again = poller.read_replies(_replies(poller, {}, cursor=0, unacked={}), 3.0)
    assert (again["prefork"].unacked, again["threads"].unacked) == (0, 0)


# --- against a real Redis and real Celery messages -------------------------------------------


Http = TestClient[web.Request, web.Application]


async def _wait_for(http: Http, check: Callable[[str], bool], timeout_s: float = 10.0) -> str:
    """``/metrics`` once ``check`` holds for it (the collector polls once a second)."""
    text = ""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = await (await http.get("/metrics")).text()
        if check(text):
            return text
        await asyncio.sleep(0.2)
    raise AssertionError(f"/metrics never satisfied the check:\n{text}")


def _collector(broker_url: str, data_dir: Path) -> Http:
    app = create_app(Settings(broker_url=broker_url), CollectorSettings(data_dir=data_dir))
    return TestClient(TestServer(app))


async def test_waiting_celery_messages_show_as_depth_and_age_until_removed(
    redis_url: str, tmp_path: Path
) -> None:
    sender = Celery("tests-queues", broker=redis_url)
    # no worker takes from the prefork queue here: what is sent stays
    for priority in (0, 0, 5, 9):
        sender.send_task("poollab.noop", kwargs={"x": 1}, queue="prefork", priority=priority,
                         headers={SENT_HEADER: time.time() - 30.0})  # fmt: skip
    sender.send_task("poollab.noop", kwargs={"x": 1}, queue="solo")
    broker = redis.Redis.from_url(redis_url)
    assert sum(broker.llen(key) for key in queue_keys("prefork")) == 4
    assert broker.exists(queue_key("prefork", 9))  # the priority lists are really used

    async with _collector(redis_url, tmp_path / "collector") as http:
        text = await _wait_for(
            http,
            lambda t: (
                metric(t, "poollab_queue_jobs", pool="prefork") == 4
                and (metric(t, "poollab_queue_oldest_job_age_seconds", pool="solo") or 0) > 0
            ),
        )
        assert 30 <= (metric(text, "poollab_queue_oldest_job_age_seconds", pool="prefork")
                      or 0) < 60  # fmt: skip
        assert metric(text, "poollab_queue_jobs", pool="solo") == 1
        for pool in ALL_POOLS:
            assert metric(text, "poollab_queue_unacked_jobs", pool=pool) == 0
            if pool not in ("prefork", "solo"):
                assert metric(text, "poollab_queue_jobs", pool=pool) == 0
                assert metric(text, "poollab_queue_oldest_job_age_seconds", pool=pool) == 0

        broker.delete(*queue_keys("prefork"), *queue_keys("solo"))
        text = await _wait_for(http, lambda t: metric(t, "poollab_queue_jobs", pool="prefork") == 0)
        assert metric(text, "poollab_queue_oldest_job_age_seconds", pool="prefork") == 0
        assert metric(text, "poollab_queue_jobs", pool="solo") == 0
    broker.close()


async def test_a_message_taken_and_not_acknowledged_counts_as_unacked(
    redis_url: str, tmp_path: Path
) -> None:
    sender = Celery("tests-queues", broker=redis_url)
    sender.send_task("poollab.noop", kwargs={"x": 1}, queue="threads")
    async with _collector(redis_url, tmp_path / "collector") as http:
        with Connection(redis_url) as connection:
            queue = connection.SimpleQueue("threads")
            message = await asyncio.to_thread(queue.get, timeout=5)
            # kombu keeps a delivered message in its unacked hash until it is acknowledged
            assert redis.Redis.from_url(redis_url).hlen(UNACKED) == 1
            await _wait_for(
                http,
                lambda t: (
                    metric(t, "poollab_queue_unacked_jobs", pool="threads") == 1
                    and metric(t, "poollab_queue_jobs", pool="threads") == 0
                ),
            )
            message.ack()
            await _wait_for(
                http, lambda t: metric(t, "poollab_queue_unacked_jobs", pool="threads") == 0
            )
            queue.close()


async def test_the_collector_rides_out_a_redis_restart(tmp_path: Path) -> None:
    server = RedisServer().start()
    port = server.port
    try:
        url = server.url + "/0"
        async with _collector(url, tmp_path / "collector") as http:
            await _wait_for(http, lambda t: metric(t, "poollab_queue_jobs", pool="gevent") == 0)
            assert (await http.get("/healthz")).status == 200
            server.stop()
            deadline = time.monotonic() + 15
            while (await http.get("/healthz")).status != 503:
                assert time.monotonic() < deadline, "the outage was never noticed"
                await asyncio.sleep(0.2)
            # the page's figures stay answerable meanwhile
            assert (await http.get("/api/pools")).status == 200

            server = RedisServer(port=port).start()
            Celery("tests-queues", broker=url).send_task("poollab.noop", queue="gevent")
            await _wait_for(
                http, lambda t: metric(t, "poollab_queue_jobs", pool="gevent") == 1, 20.0
            )
            deadline = time.monotonic() + 15
            while (await http.get("/healthz")).status != 200:
                assert time.monotonic() < deadline, "the collector did not reconnect"
                await asyncio.sleep(0.2)
    finally:
        server.stop()
