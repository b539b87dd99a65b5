"""Celery's own event receiver (what Flower runs) sees the consumer and its tasks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from celery import Celery

from tests.consumer.conftest import ConsumerFactory

NODE = "asyncio@events"


@contextmanager
def receiving(app: Celery, redis_url: str) -> Iterator[tuple[list[dict[str, Any]], Any]]:
    """Run ``app.events.Receiver`` in a thread; yield the events seen and its State."""
    state = app.events.State()
    seen: list[dict[str, Any]] = []

    def on_event(event: dict[str, Any]) -> None:
        seen.append(event)
        state.event(event)

    with app.connection_for_read() as conn:
        receiver = app.events.Receiver(conn, handlers={"*": on_event})
        thread = threading.Thread(
            target=receiver.capture, kwargs={"limit": None, "timeout": None, "wakeup": False}
        )
        thread.start()
        try:
            # the receiver listens with PSUBSCRIBE: wait until it does, or it misses worker-online
            probe = redis.Redis.from_url(redis_url)
            wait_until(lambda: bool(probe.execute_command("PUBSUB", "NUMPAT")), "receiver up")
            probe.close()
            yield seen, state
        finally:
            receiver.should_stop = True
            thread.join(10)


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _types(seen: list[dict[str, Any]], uuid: str | None = None) -> list[str]:
    return [e["type"] for e in list(seen) if uuid is None or e.get("uuid") == uuid]


def test_receiver_sees_the_worker_and_every_task_state(
    consumer_env: dict[str, str], start_consumer: ConsumerFactory, client: Celery, redis_url: str
) -> None:
    with receiving(client, redis_url) as (seen, state):
        consumer = start_consumer(consumer_env, nodename=NODE)
        ok = client.send_task("poollab.noop", kwargs={"x": 1}, queue="asyncio")
        bad = client.send_task("poollab.sleep", kwargs={"ms": -1}, queue="asyncio")
        ok.get(timeout=30)
        with pytest.raises(Exception, match="greater than or equal"):
            bad.get(timeout=30)
        wait_until(lambda: "task-failed" in _types(seen, bad.id), "task-failed")
        wait_until(lambda: "worker-heartbeat" in _types(seen), "a heartbeat")
        consumer.terminate()
        assert consumer.wait(30) == 0
        wait_until(lambda: "worker-offline" in _types(seen), "worker-offline")

    assert _types(seen, ok.id) == ["task-received", "task-started", "task-succeeded"]
    assert _types(seen, bad.id) == ["task-received", "task-started", "task-failed"]
    workers = [e for e in seen if e["type"].startswith("worker-")]
    assert workers[0]["type"] == "worker-online"
    assert {e["hostname"] for e in seen} == {NODE}
    online = workers[0]
    assert online["cpu_executor"] == "process" and online["loop"] == "asyncio"
    assert online["freq"] == 2.0 and online["sw_ident"] == "poollab-asyncio"
    # what Flower shows, from Celery's own event state
    assert NODE in state.workers
    assert state.tasks[ok.id].state == "SUCCESS"
    assert state.tasks[ok.id].name == "poollab.noop"
    assert state.tasks[ok.id].worker.hostname == NODE
    assert state.tasks[bad.id].state == "FAILURE"
    assert "JobError" in state.tasks[bad.id].exception
    clocks = [e["clock"] for e in seen]
    assert clocks == sorted(clocks) and len(set(clocks)) == len(clocks)


def test_task_events_off_keeps_worker_events_only(
    consumer_env: dict[str, str], start_consumer: ConsumerFactory, client: Celery, redis_url: str
) -> None:
    env = {**consumer_env, "POOLLAB_TASK_EVENTS": "false"}
    with receiving(client, redis_url) as (seen, _):
        start_consumer(env, nodename=NODE)
        client.send_task("poollab.noop", kwargs={"x": 1}, queue="asyncio").get(timeout=30)
        wait_until(lambda: "worker-heartbeat" in _types(seen), "a heartbeat")
    assert not [t for t in _types(seen) if t.startswith("task-")]
    assert _types(seen)[0] == "worker-online"
