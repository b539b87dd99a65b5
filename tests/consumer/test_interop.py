"""A plain Celery client cannot tell the consumer from a Celery worker.

One consumer subprocess serves the whole module (its own database of the tests' Redis);
jobs are sent with ``send_task`` and read back with ``AsyncResult.get()``.
"""

from __future__ import annotations

import base64
import json
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.exceptions import NotRegistered
from celery.result import AsyncResult
from kombu.exceptions import ContentDisallowed, DecodeError

from poollab import jobs
from poollab.consumer import layout, protocol
from tests.consumer.conftest import (
    ConsumerProcess,
    module_consumer,
    module_env,
)

NODE = "asyncio@interop"
KIND_PARAMS: dict[str, dict[str, Any]] = {
    "noop": {"x": {"hello": ["world", 1]}},
    "sleep": {"ms": 20},
    "cpu": {"n": 20_000},
    "io": {"ms": 20, "bytes": 100},
    "mixed": {"n": 5_000, "ms": 10},
}


@pytest.fixture(scope="module")
def consumer(
    shared_db: str, upstream_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConsumerProcess]:
    log_dir = tmp_path_factory.mktemp("interop")
    with module_consumer(
        shared_db, upstream_url, log_dir, "-c", "20", "--cpu-workers", "2", nodename=NODE
    ) as process:
        yield process


@pytest.fixture(scope="module")
def db(consumer: ConsumerProcess) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(consumer.settings.broker_url)
    yield client
    client.close()


def _send(app: Celery, kind: str, params: dict[str, Any], **options: Any) -> AsyncResult:
    return app.send_task(
        f"poollab.{kind}",
        kwargs=params,
        queue="asyncio",
        headers={jobs.SENT_HEADER: time.time()},
        **options,
    )


@pytest.mark.parametrize("kind", list(KIND_PARAMS))
def test_every_kind_reads_back_with_asyncresult_get(app: Celery, kind: str) -> None:
    params = KIND_PARAMS[kind]
    before = time.time()
    result = _send(app, kind, params)
    value = result.get(timeout=30)
    assert result.state == "SUCCESS"
    assert value["value"] == jobs.expected_value(kind, params)
    assert value["pool"] == "asyncio" and value["hostname"] == jobs.HOSTNAME
    timings = value["timings"]
    assert before <= timings["sent"] <= timings["started"] <= timings["finished"] <= time.time()


def test_the_stored_meta_is_celerys(app: Celery, db: redis.Redis) -> None:
    result = _send(app, "noop", {"x": 1})
    result.get(timeout=30)
    key = layout.task_meta_key(result.id)
    meta = json.loads(db.get(key) or b"{}")
    assert list(meta) == ["status", "result", "traceback", "children", "date_done", "task_id"]
    assert meta["status"] == "SUCCESS" and meta["task_id"] == result.id
    assert 3500 < db.ttl(key) <= 3600
    assert db.hlen(layout.UNACKED) == 0


def test_a_failing_job_reads_back_as_a_failure(app: Celery) -> None:
    result = _send(app, "sleep", {"ms": -1})
    with pytest.raises(Exception) as caught:
        result.get(timeout=30)
    assert type(caught.value).__name__ == "JobError"
    assert result.state == "FAILURE"
    assert "JobError" in (result.traceback or "")


def test_an_upstream_error_is_a_failure(app: Celery) -> None:
    result = _send(app, "io", {"ms": 1, "fail_rate": 1.0})
    with pytest.raises(Exception, match="upstream answered 500"):
        result.get(timeout=30)
    assert result.state == "FAILURE"


def test_an_unknown_task_is_stored_as_not_registered(app: Celery) -> None:
    result = app.send_task("poollab.nope", kwargs={}, queue="asyncio")
    with pytest.raises(NotRegistered):
        result.get(timeout=30)
    assert result.state == "FAILURE"


def test_positional_arguments_are_a_failure(app: Celery) -> None:
    result = app.send_task("poollab.noop", args=[1], queue="asyncio")
    with pytest.raises(TypeError, match="keyword arguments only"):
        result.get(timeout=30)


def test_a_hard_time_limit_is_enforced(app: Celery) -> None:
    result = _send(app, "sleep", {"ms": 5_000}, time_limit=0.2)
    with pytest.raises(Exception) as caught:
        result.get(timeout=30)
    assert type(caught.value).__name__ == "TimeLimitExceeded"


def test_an_expired_job_is_revoked_not_run(app: Celery) -> None:
    result = _send(app, "sleep", {"ms": 5_000}, expires=datetime.now(UTC) - timedelta(seconds=10))
    with pytest.raises(Exception, match="expired"):
        result.get(timeout=30)
    assert result.state == "REVOKED"


class _Touch:
    """Unpickling this would create a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


def test_malformed_messages_are_skipped_and_the_next_one_runs(
    app: Celery, db: redis.Redis, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    pickled = protocol.task_message("poollab.noop", {}, queue="asyncio")
    pickled["content-type"] = "application/x-python-serialize"
    pickled["content-encoding"] = "binary"
    pickled["body"] = base64.b64encode(pickle.dumps(_Touch(marker))).decode()
    bad_base64 = protocol.task_message("poollab.noop", {}, queue="asyncio")
    bad_base64["body"] = "%%% not base64 %%%"
    # LPUSH puts each behind the last; the consumer takes from the other end
    db.lpush("asyncio", b"\x00garbage{", json.dumps(pickled), json.dumps(bad_base64))
    after = _send(app, "noop", {"x": "after"})
    assert after.get(timeout=30)["value"] == "after"
    refused = AsyncResult(pickled["headers"]["id"], app=app)
    with pytest.raises(ContentDisallowed):
        refused.get(timeout=30)
    undecodable = AsyncResult(bad_base64["headers"]["id"], app=app)
    with pytest.raises(DecodeError):
        undecodable.get(timeout=30)
    assert not marker.exists()
    assert db.llen("asyncio") == 0 and db.hlen(layout.UNACKED) == 0


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def test_many_jobs_overlap_within_the_concurrency_bound(app: Celery) -> None:
    results = [_send(app, "io", {"ms": 50}) for _ in range(200)]
    values = [r.get(timeout=60) for r in results]
    assert all(v["value"]["status"] == 200 for v in values)
    spans = [(v["timings"]["started"], v["timings"]["finished"]) for v in values]
    # -c 20: jobs overlap, and never more than 20 of them
    assert 1 < _most_at_once(spans) <= 20


def test_healthcheck_command(consumer: ConsumerProcess) -> None:
    env = module_env(consumer.settings.broker_url, "http://127.0.0.1:1")
    poollab = [sys.executable, "-m", "poollab.cli", "consume", "--healthcheck"]
    alive = subprocess.run([*poollab, "-n", NODE], env=env, timeout=30)
    assert alive.returncode == 0
    other = subprocess.run([*poollab, "-n", "asyncio@nobody"], env=env, timeout=30)
    assert other.returncode == 1


def test_the_liveness_key_says_how_the_consumer_runs(consumer: ConsumerProcess) -> None:
    from poollab.hooks.liveness import read_info

    info = read_info(consumer.settings, NODE)
    assert info is not None
    assert info["cpu_executor"] == "process" and info["concurrency"] == 20
    assert info["loop"] == "asyncio" and info["queue"] == "asyncio"
    assert info["pid"] == consumer.process.pid
