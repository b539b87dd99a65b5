"""A stopped consumer finishes or returns its own jobs.

A killed one's jobs come back and run again, counted per id: tests/faults/test_worker_death.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from celery import Celery

from poollab.consumer import layout
from tests.consumer.conftest import ConsumerFactory


@pytest.fixture
def db(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _sleep_jobs(client: Celery, count: int, ms: int) -> list[str]:
    return [
        client.send_task("poollab.sleep", kwargs={"ms": ms}, queue="asyncio").id
        for _ in range(count)
    ]


def _stored(db: redis.Redis, ids: list[str]) -> dict[str, str]:
    metas = db.mget([layout.task_meta_key(i) for i in ids])
    return {i: json.loads(m)["status"] for i, m in zip(ids, metas, strict=True) if m}


def _queued_ids(db: redis.Redis) -> list[str]:
    return [json.loads(raw)["headers"]["id"] for raw in db.lrange("asyncio", 0, -1)]


def test_sigterm_finishes_running_jobs_and_leaves_the_rest_queued(
    consumer_env: dict[str, str], start_consumer: ConsumerFactory, client: Celery, db: redis.Redis
) -> None:
    consumer = start_consumer(consumer_env, "-c", "2", "--grace-s", "20")
    ids = _sleep_jobs(client, 6, 1_500)
    wait_until(lambda: db.zcard(layout.UNACKED_INDEX) == 2, "two jobs running")
    consumer.terminate()
    assert consumer.wait(30) == 0
    assert _stored(db, ids) == {ids[0]: "SUCCESS", ids[1]: "SUCCESS"}
    assert sorted(_queued_ids(db)) == sorted(ids[2:])
    assert db.hlen(layout.UNACKED) == 0 and db.zcard(layout.UNACKED_INDEX) == 0
    assert "stopping" in consumer.log()


def test_sigterm_past_the_grace_period_returns_held_jobs_to_the_queue(
    consumer_env: dict[str, str], start_consumer: ConsumerFactory, client: Celery, db: redis.Redis
) -> None:
    consumer = start_consumer(consumer_env, "-c", "2", "--grace-s", "0.5")
    running = _sleep_jobs(client, 1, 60_000)[0]
    later = client.send_task("poollab.noop", kwargs={"x": 1}, queue="asyncio", countdown=60).id
    wait_until(lambda: db.zcard(layout.UNACKED_INDEX) == 2, "both jobs held")
    started = time.monotonic()
    consumer.terminate()
    assert consumer.wait(30) == 0
    assert time.monotonic() - started < 20  # the 60 s job did not hold the stop
    assert _stored(db, [running, later]) == {}
    assert sorted(_queued_ids(db)) == sorted([running, later])
    assert all(
        json.loads(raw)["headers"]["redelivered"] is True for raw in db.lrange("asyncio", 0, -1)
    )
    assert db.hlen(layout.UNACKED) == 0 and db.zcard(layout.UNACKED_INDEX) == 0
