"""The bench's lab on a real Redis: what it clears after a cell that timed out, and where."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import redis

from poollab.celery_config import make_client
from poollab.measure.bench.lab import BenchLab
from poollab.measure.queues import task_id_of
from poollab.producer.publish import publish
from poollab.settings import Settings


def _lab(redis_url: str, tmp_path: Path, embedded: bool, said: list[str]) -> BenchLab:
    """A BenchLab attached to the tests' Redis, as start() would leave it (no processes)."""
    lab = BenchLab(dict(os.environ), tmp_path / "lab", 0.2, say=said.append)
    lab.embedded = embedded
    lab.broker_label = "embedded" if embedded else "POOLLAB_BROKER_URL"
    lab.settings = Settings(broker_url=redis_url)
    lab.client = make_client("poollab-bench-test", lab.settings)
    lab.redis = redis.Redis.from_url(redis_url)
    return lab


def test_on_a_given_redis_only_the_cells_own_messages_are_removed(
    redis_url: str, tmp_path: Path
) -> None:
    said: list[str] = []
    lab = _lab(redis_url, tmp_path, embedded=False, said=said)
    assert lab.client is not None and lab.redis is not None
    # someone else's jobs, before and after the cell's own, on the same queue
    theirs = publish(lab.client, "solo", "noop", {"x": "theirs"}, 3)
    ours = publish(lab.client, "solo", "noop", {"x": "ours"}, 5, remember=False)
    theirs += publish(lab.client, "solo", "noop", {"x": "theirs"}, 2)
    lab.redis.lpush("solo", b"not a kombu message")

    removed = lab.purge("solo", ours)

    assert removed == 5
    left = [task_id_of(raw) for raw in lab.redis.lrange("solo", 0, -1)]
    assert sorted(filter(None, left)) == sorted(theirs)
    assert left.count(None) == 1
    assert any("POOLLAB_BROKER_URL" in line and "5" in line for line in said), said
    # nothing of ours left: a second purge finds nothing and still deletes nothing
    assert lab.purge("solo", ours) == 0
    assert lab.redis.llen("solo") == 6
    lab.stop()


def test_on_its_own_embedded_redis_the_queue_is_dropped_whole(
    redis_url: str, tmp_path: Path
) -> None:
    said: list[str] = []
    lab = _lab(redis_url, tmp_path, embedded=True, said=said)
    assert lab.client is not None and lab.redis is not None
    publish(lab.client, "threads", "noop", {}, 4, remember=False)
    assert lab.purge("threads", [str(uuid.uuid4())]) == 4
    assert lab.redis.llen("threads") == 0
    assert any("own" in line for line in said), said
    lab.stop()
