"""The hook layer: counts, samples and the liveness key, on a real Redis."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest
import redis

from poollab.hooks.journal import read_journal
from poollab.hooks.layer import ConsumerHooks
from poollab.hooks.liveness import ALIVE_TTL_S, alive_key
from poollab.measure.samples import read_samples


def _wait(predicate: object, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(0.05)
    return False


def test_samples_carry_the_counts_and_concurrency_and_stop_takes_the_key_away(
    redis_url: str,
) -> None:
    client = redis.Redis.from_url(redis_url)
    hooks = ConsumerHooks(redis_url, interval_s=0.1)
    for n, ok in enumerate((True, True, False)):
        hooks.job_started(f"job-{n}")
        hooks.job_finished(ok)
    hooks.job_started("job-3")  # one still running
    since = time.time()
    hooks.start("layer", "layer@test", 7, {"queue": "layer"})
    try:
        assert _wait(lambda: len(read_samples(client, "layer", since, time.time())) >= 2)
        sample = read_samples(client, "layer", since, time.time())[-1]
        assert (sample.started, sample.succeeded, sample.failed) == (4, 2, 1)
        assert sample.concurrency == 7 and sample.node == "layer@test"
        info = json.loads(client.get(alive_key("layer@test")) or b"{}")
        assert info["pool"] == "layer" and info["concurrency"] == 7 and info["queue"] == "layer"
        assert 0 < client.ttl(alive_key("layer@test")) <= ALIVE_TTL_S
    finally:
        hooks.stop()
    assert client.get(alive_key("layer@test")) is None
    written = len(read_samples(client, "layer", since, time.time()))
    time.sleep(0.3)
    assert len(read_samples(client, "layer", since, time.time())) == written


def test_a_consumer_that_beats_is_alive_only_while_its_beats_come(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    hooks = ConsumerHooks(redis_url, interval_s=0.1, beats=True)
    hooks.start("beating", "beating@test", 1, {})
    try:
        time.sleep(0.4)
        # sampled, but no beat from its loop yet: not reported alive
        assert client.get(alive_key("beating@test")) is None
        hooks.heartbeat()
        assert _wait(lambda: client.get(alive_key("beating@test")) is not None)
        # a loop that stalls stops the refreshes; the key then expires on its own
        hooks._last_beat = time.monotonic() - ALIVE_TTL_S - 1
        client.delete(alive_key("beating@test"))
        time.sleep(0.4)
        assert client.get(alive_key("beating@test")) is None
    finally:
        hooks.stop()


def test_sampling_off_still_keeps_the_liveness_key(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    hooks = ConsumerHooks(redis_url, interval_s=0.0)
    since = time.time()
    hooks.start("quiet", "quiet@test", 1, {})
    try:
        assert _wait(lambda: client.get(alive_key("quiet@test")) is not None)
        assert read_samples(client, "quiet", since - 1, time.time() + 1) == []
    finally:
        hooks.stop()


def test_the_run_journal_is_off_unless_a_file_is_named(redis_url: str) -> None:
    hooks = ConsumerHooks(redis_url, interval_s=0.0)
    assert hooks.journal is None and hooks.pause_after_store_s == 0
    hooks.job_started("x")
    hooks.job_stored("x")


def _journal_from_a_child(hooks: ConsumerHooks, prefix: str) -> None:
    for n in range(200):
        hooks.job_started(f"{prefix}-{n}")
        hooks.job_stored(f"{prefix}-{n}")


def test_the_run_journal_takes_whole_lines_from_forked_children_and_threads(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "runs.journal"
    monkeypatch.setenv("POOLLAB_RUN_JOURNAL", str(path))
    monkeypatch.setenv("POOLLAB_TEST_PAUSE_AFTER_STORE_S", "2.5")
    hooks = ConsumerHooks(redis_url, interval_s=0.0, pool="layer")
    assert hooks.pause_after_store_s == 2.5
    hooks.job_started("parent")  # opened before the fork, as a prefork worker's is
    fork = multiprocessing.get_context("fork")
    children = [fork.Process(target=_journal_from_a_child, args=(hooks, f"p{i}")) for i in range(3)]
    threads = [
        threading.Thread(target=_journal_from_a_child, args=(hooks, f"t{i}")) for i in range(3)
    ]
    for worker in [*children, *threads]:
        worker.start()
    for worker in [*children, *threads]:
        worker.join(30)
    assert all(child.exitcode == 0 for child in children)
    lines = read_journal(path)
    # every line whole: 1 + 6 writers x 200 jobs x (start, stored)
    assert len(lines) == len(path.read_text().splitlines()) == 1 + 6 * 200 * 2
    assert {line.pool for line in lines} == {"layer"}
    assert {line.pid for line in lines} == {c.pid for c in children} | {os.getpid()}
    started = [line.task_id for line in lines if line.event == "start"]
    stored = [line.task_id for line in lines if line.event == "stored"]
    assert len(set(started)) == len(started) == 1 + 6 * 200 and len(stored) == 6 * 200
