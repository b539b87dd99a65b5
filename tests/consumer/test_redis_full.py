"""Redis full (``maxmemory`` with ``noeviction``): the asyncio consumer does not stall silently.

Each test starts a redis-server of its own with a small ``--maxmemory`` and
``--maxmemory-policy noeviction`` and fills it until writes answer ``OOM`` while jobs flow to
the consumer. The consumer logs the failed writes and keeps retrying them, is not reported
alive while it cannot make progress, and once memory is freed every job completes: none
lost, counted by result. A failure that cannot be retried (a permission refused) ends it
with exit status 1, its job goes back to the queue, and a restarted consumer runs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator

import redis
from redis.exceptions import OutOfMemoryError

from poollab.consumer import layout
from poollab.hooks.liveness import is_alive
from poollab.launcher.redis_server import answers, free_port, redis_server_binary
from poollab.measure.collect import collect
from tests.consumer.conftest import ConsumerFactory, ConsumerProcess, celery_client

MAXMEMORY = "24mb"
CHUNK = b"x" * (256 * 1024)
MARGIN = 2 * 2**20
JOBS = 8


@contextlib.contextmanager
def small_redis() -> Iterator[redis.Redis]:
    """A redis-server of this test's own that refuses writes once at ``MAXMEMORY``."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="poollab-full-redis-") as data_dir:
        process = subprocess.Popen(
            [
                redis_server_binary(),
                "--bind", "127.0.0.1", "--port", str(port), "--dir", data_dir,
                "--save", "", "--appendonly", "no",
                "--maxmemory", MAXMEMORY, "--maxmemory-policy", "noeviction",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        try:
            wait_until(lambda: answers(url), "the small redis-server", 10)
            yield client
        finally:
            client.close()
            process.terminate()
            process.wait(10)


def url_of(client: redis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


def fill(db: redis.Redis) -> int:
    """Write chunks until Redis answers OOM, and keep it there; how many went in.

    The write refused is the one whose own arguments pushed the memory used over the
    limit: once refused, they are freed and a small write would fit again. So the limit is
    then lowered to a margin below the memory in use (``noeviction`` evicts nothing): every
    write answers OOM, whatever client buffers come and go, until the filler is deleted.
    """
    for i in range(1000):
        try:
            db.set(f"filler:{i}", CHUNK)
        except OutOfMemoryError:
            used = int(db.info("memory")["used_memory"])
            db.config_set("maxmemory", used - MARGIN)
            return i
    raise AssertionError(f"no OOM after 1000 chunks: is maxmemory {MAXMEMORY} set?")


def free(db: redis.Redis) -> None:
    keys = list(db.scan_iter("filler:*"))
    if keys:
        db.delete(*keys)


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def alive(consumer: ConsumerProcess) -> bool:
    return is_alive(consumer.settings, consumer.nodename)


def send_sleeps(broker_url: str, count: int) -> list[str]:
    client = celery_client(broker_url)
    try:
        return [
            client.send_task("poollab.sleep", kwargs={"ms": 20}, queue="asyncio").id
            for _ in range(count)
        ]
    finally:
        client.close()


def stored(results: redis.Redis, ids: list[str]) -> dict[str, str]:
    metas = results.mget([layout.task_meta_key(i) for i in ids])
    return {i: json.loads(m)["status"] for i, m in zip(ids, metas, strict=True) if m}


def assert_stuck_then_recovers(
    consumer: ConsumerProcess, broker: redis.Redis, results: redis.Redis, ids: list[str]
) -> None:
    """While Redis is full: OOM logged, retried, not alive, nothing acked; then freed: done."""
    wait_until(lambda: "results failed (OutOfMemoryError" in consumer.log(), "the OOM to be logged")
    wait_until(lambda: not alive(consumer), "the consumer to stop reporting itself alive")
    wait_until(
        lambda: consumer.log().count("results failed (OutOfMemoryError") >= 3,
        "the write to be retried",
    )
    assert consumer.process.poll() is None, consumer.log()
    assert "not reporting alive: results cannot be written" in consumer.log()
    # nothing written and nothing acknowledged: the jobs that ran are still held
    assert stored(results, ids) == {}
    assert broker.hlen(layout.UNACKED) > 0

    free(results)
    metas = collect(results, ids, timeout_s=30, interval_s=0.1).metas
    assert len(metas) == len(ids), f"lost: {sorted(set(ids) - set(metas))}\n{consumer.log()}"
    assert {m["status"] for m in metas.values()} == {"SUCCESS"}
    wait_until(lambda: alive(consumer), "the consumer to report itself alive again")
    wait_until(lambda: broker.hlen(layout.UNACKED) == 0, "every job acknowledged")
    assert broker.llen("asyncio") == 0
    assert "results written again" in consumer.log()


def test_full_redis_holds_results_until_memory_is_freed(
    start_consumer: ConsumerFactory, upstream_url: str
) -> None:
    """Results in the broker's Redis (the default): the writes answer OOM, the takes not."""
    with small_redis() as db:
        url = url_of(db)
        env = {
            **os.environ,
            "POOLLAB_BROKER_URL": url,
            "POOLLAB_RESULT_BACKEND": "",
            "POOLLAB_UPSTREAM_URL": upstream_url,
        }
        consumer = start_consumer(
            env, "-c", "4", "--cpu-executor", "inline", nodename="asyncio@full"
        )
        # held still while the jobs go in and Redis fills: the jobs then run on a full Redis
        os.kill(consumer.process.pid, signal.SIGSTOP)
        try:
            ids = send_sleeps(url, JOBS)
            assert fill(db) > 0
        finally:
            os.kill(consumer.process.pid, signal.SIGCONT)
        assert_stuck_then_recovers(consumer, db, db, ids)


def test_full_result_backend_then_a_refused_write_ends_the_consumer(
    start_consumer: ConsumerFactory, upstream_url: str, redis_url: str
) -> None:
    """Results in a Redis of their own that fills up while the broker is fine: the liveness
    key (on the broker) could still be written, the consumer withholds it. Then a write
    that can never succeed (SET denied by an ACL): exit 1, the job back on the queue, and
    the restarted consumer runs it."""
    broker = redis.Redis.from_url(redis_url)
    with small_redis() as results:
        env = {
            **os.environ,
            "POOLLAB_BROKER_URL": redis_url,
            "POOLLAB_RESULT_BACKEND": url_of(results),
            "POOLLAB_UPSTREAM_URL": upstream_url,
        }
        args = ("-c", "4", "--cpu-executor", "inline")
        consumer = start_consumer(env, *args, nodename="asyncio@backend-full")
        assert fill(results) > 0
        ids = send_sleeps(redis_url, JOBS)
        assert_stuck_then_recovers(consumer, broker, results, ids)

        results.execute_command("ACL", "SETUSER", "default", "-set")
        (refused,) = send_sleeps(redis_url, 1)
        assert consumer.wait(30) == 1, consumer.log()
        assert "writer failed and cannot be retried (NoPermissionError" in consumer.log()
        # not acknowledged, and put back at once rather than after the visibility timeout
        assert [json.loads(raw)["headers"]["id"] for raw in broker.lrange("asyncio", 0, -1)] == [
            refused
        ]
        assert broker.hlen(layout.UNACKED) == 0

        results.execute_command("ACL", "SETUSER", "default", "+set")
        start_consumer(env, *args, nodename="asyncio@backend-full")
        metas = collect(results, [refused], timeout_s=30, interval_s=0.1).metas
        assert metas[refused]["status"] == "SUCCESS"
    broker.close()
