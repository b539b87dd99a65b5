"""Taking a run's own jobs off a queue on a real Redis, and nobody else's."""

from __future__ import annotations

import redis

from poollab.celery_config import make_client
from poollab.measure.queues import remove_leftovers, remove_own_messages, task_id_of
from poollab.producer.publish import publish
from poollab.settings import Settings


def test_only_the_listed_task_ids_are_removed_across_chunks(redis_url: str) -> None:
    app = make_client("test-queues", Settings(broker_url=redis_url))
    client = redis.Redis.from_url(redis_url)
    # more than one chunk of list items, ours spread among others'
    theirs = publish(app, "gevent", "noop", {}, 1500, remember=False)
    ours = publish(app, "gevent", "noop", {}, 700, remember=False)
    theirs += publish(app, "gevent", "noop", {}, 600, remember=False)
    client.lpush("gevent", b"garbage", b"[1, 2]", b'{"headers": 3}')

    assert remove_own_messages(client, "gevent", [*ours, "not-an-id"]) == 700
    left = [task_id_of(raw) for raw in client.lrange("gevent", 0, -1)]
    assert sorted(filter(None, left)) == sorted(theirs)
    assert left.count(None) == 3
    assert remove_own_messages(client, "gevent", ours) == 0
    assert remove_own_messages(client, "gevent", []) == 0
    assert client.llen("gevent") == 2103
    client.close()


def test_leftovers_on_a_given_redis_are_removed_and_said(redis_url: str) -> None:
    app = make_client("test-queues", Settings(broker_url=redis_url))
    ours = {pool: publish(app, pool, "noop", {}, 2, remember=False) for pool in ("solo", "threads")}
    theirs = publish(app, "solo", "noop", {}, 1, remember=False)

    said = remove_leftovers(redis_url, {**ours, "asyncio": []}, "soak")

    assert "removed 4" in said and "solo (2)" in said and "threads (2)" in said, said
    assert "POOLLAB_BROKER_URL" in said
    client = redis.Redis.from_url(redis_url)
    assert [task_id_of(raw) for raw in client.lrange("solo", 0, -1)] == theirs
    assert client.llen("threads") == 0
    client.close()
    assert "no unfinished job" in remove_leftovers(redis_url, {"solo": []}, "soak")
