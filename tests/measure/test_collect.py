"""Reading many results back from a real Redis (the tests' own, see tests/conftest.py)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery

from poollab.measure.collect import (
    collect,
    failure_reason,
    job_timing,
    meta_key,
    read_raw,
)
from poollab.timings import JobTiming


@pytest.fixture
def db(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _success(task_id: str, finished: float = 3.0) -> dict[str, Any]:
    envelope = {
        "value": 1,
        "pool": "solo",
        "pid": 42,
        "timings": {"sent": 1.0, "started": 2.0, "finished": finished},
    }
    return {"task_id": task_id, "status": "SUCCESS", "result": envelope}


def _failure(task_id: str) -> dict[str, Any]:
    error = {"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"}
    return {"task_id": task_id, "status": "FAILURE", "result": error}


def _store(db: redis.Redis, meta: dict[str, Any]) -> None:
    db.set(meta_key(meta["task_id"]), json.dumps(meta))


def test_read_raw_keeps_the_order_of_the_ids_across_batches_in_one_pipeline(
    db: redis.Redis,
) -> None:
    ids = [f"id-{i}" for i in range(10)]
    for task_id in ids[::2]:
        db.set(meta_key(task_id), task_id)
    db.config_resetstat()
    raws = read_raw(db, ids, batch=3)
    assert raws == [task_id.encode() if i % 2 == 0 else None for i, task_id in enumerate(ids)]
    # four batches of at most three keys: four MGETs, sent in one pipeline
    assert db.info("commandstats")["cmdstat_mget"]["calls"] == 4
    assert read_raw(db, []) == []


def test_read_raw_reads_any_key_scheme(db: redis.Redis) -> None:
    db.set("arq:result:a", b"x")
    assert read_raw(db, ["a", "b"], key_for=lambda i: f"arq:result:{i}") == [b"x", None]


def test_collect_returns_the_finished_and_names_the_rest(db: redis.Redis) -> None:
    _store(db, _success("ok"))
    _store(db, _failure("bad"))
    _store(db, {"task_id": "busy", "status": "STARTED", "result": None})
    db.set(meta_key("foreign"), b"\x80not json")
    seen: list[str] = []
    started = time.monotonic()
    collected = collect(
        db,
        ["ok", "bad", "busy", "never", "ok"],
        timeout_s=0.3,
        on_result=lambda i, _: seen.append(i),
    )
    assert 0.25 <= time.monotonic() - started < 5
    assert set(collected.metas) == {"ok", "bad"}
    assert collected.pending == ["busy", "never"]
    assert sorted(seen) == ["bad", "ok"]  # once each, though "ok" was asked for twice
    assert list(collected.succeeded()) == ["ok"]
    assert collected.timings() == [JobTiming(1.0, 2.0, 3.0, "solo", 42)]
    assert collected.failures() == {"bad": "ValueError: boom"}
    # a foreign writer's value ends the wait for it, as a failure
    assert collect(db, ["foreign"], timeout_s=0).metas["foreign"]["status"] == "FAILURE"


def test_collect_waits_for_results_written_meanwhile(db: redis.Redis) -> None:
    ids = [f"late-{i}" for i in range(5)]
    writer = threading.Timer(0.2, lambda: [_store(db, _success(i)) for i in ids])
    writer.start()
    progress: list[int] = []
    try:
        collected = collect(db, ids, timeout_s=30, on_progress=progress.append)
    finally:
        writer.join()
    assert set(collected.metas) == set(ids) and not collected.pending
    assert progress[0] == 0 and progress[-1] == 5


def test_a_zero_timeout_is_a_single_pass(db: redis.Redis) -> None:
    _store(db, _success("done"))
    progress: list[int] = []
    collected = collect(db, ["done", "missing"], timeout_s=0, on_progress=progress.append)
    assert progress == [1]
    assert collected.pending == ["missing"]


def test_job_timing_only_for_a_success_with_the_lab_envelope() -> None:
    assert job_timing(_success("a")) == JobTiming(1.0, 2.0, 3.0, "solo", 42)
    assert job_timing(_failure("a")) is None
    assert job_timing({"status": "SUCCESS", "result": 7}) is None
    assert job_timing({"status": "SUCCESS", "result": {"value": 7}}) is None


@pytest.mark.parametrize(
    "exc", [ValueError("boom"), RuntimeError("a", 2), RuntimeError(), TimeoutError(5.0)]
)
def test_failure_reason_reads_like_the_exception_celery_rebuilds(exc: Exception) -> None:
    backend = Celery(backend="redis://127.0.0.1:1/0", broker="memory://").backend
    stored = json.loads(json.dumps(backend.prepare_exception(exc)))
    rebuilt = backend.exception_to_python(stored)
    meta = {"status": "FAILURE", "result": stored}
    assert failure_reason(meta) == f"{type(rebuilt).__name__}: {rebuilt}"


def test_failure_reason_of_a_result_without_an_exception() -> None:
    assert failure_reason({"status": "SUCCESS", "result": 7}) == "int: 7"
