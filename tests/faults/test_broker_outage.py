"""Redis stopped, or killed, mid-run and started again: every job the producer accepted
completes, on every consumer (the four Celery pools and the asyncio consumer).

Redis here persists (append-only file, kept in a directory of the test's, fsynced as the lab
configures it: ``POOLLAB_REDIS_APPENDFSYNC``, ``always`` by default) and comes back on the
same port, as a restarted server or container would. While it is down the producer answers
503 with ``Retry-After`` on every route that needs it, ``/healthz`` included; the consumers
and the producer reconnect by themselves once it is back. Jobs running when it went down
finish, wait (the result backend retries) and are acknowledged after the reconnect.

Two ways down: a graceful stop (SIGTERM: Redis writes its append-only file out and exits)
and a crash (SIGKILL: nothing runs on the way out; what Redis answered before is in the file
or not, as its fsync policy says). Both tests share one lab: its start-up is most of the cost.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from poollab.launcher.redis_server import RedisServer, answers, free_port
from poollab.settings import ALL_POOLS
from tests.faults.conftest import FaultLab, make_lab, running, wait_until

pytestmark = pytest.mark.faults

# longer than the outage and the reconnect together: a job is delivered twice only if its
# acknowledgement was really lost, never because the outage outlasted the timeout
OUTAGE_ENV = {"POOLLAB_VISIBILITY_TIMEOUT": "30", "POOLLAB_RESTORE_INTERVAL_S": "1"}
OUTAGE_S = 5.0
# jobs accepted per consumer before the crash, and again after the restart
FLOWING = 4


def call(method: str, url: str, body: Any = None) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, method=method, data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def assert_unavailable(status: int, headers: dict[str, str], answer: Any, what: str) -> None:
    assert status == 503, (what, status, answer)
    assert int(headers["Retry-After"]) > 0
    assert answer["error"] == "broker unavailable"
    assert answer.get("ids", []) == []  # nothing was half-published


def held(db: redis.Redis) -> dict[str, str]:
    """Job id → pool of every message a consumer holds unacknowledged (kombu's ``unacked``
    hash: ``[message, exchange, routing_key]``; the asyncio consumer files its own the same
    way), i.e. running or prefetched."""
    found: dict[str, str] = {}
    for raw in db.hvals("unacked"):
        message, _exchange, routing_key = json.loads(raw)
        task_id = (message.get("headers") or {}).get("id")
        if task_id:
            found[task_id] = routing_key
    return found


@dataclass
class Outage:
    server: RedisServer
    lab: FaultLab
    base: str

    def ensure_up(self) -> None:
        if not answers(self.server.url + "/0"):
            self.server.start()
        wait_until(lambda: call("GET", f"{self.base}/healthz")[0] == 200, "producer healthy")


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    root = tmp_path_factory.mktemp("outage")
    data_dir = root / "redis-data"
    data_dir.mkdir()
    server = RedisServer(port=free_port(), persistent=True, data_dir=data_dir).start()
    try:
        lab = make_lab(root, server.url + "/0", ALL_POOLS, OUTAGE_ENV, with_producer=True)
        with running(lab):
            yield Outage(server, lab, f"http://127.0.0.1:{lab.settings.producer_port}")
    finally:
        server.stop()


def in_flight_ids(lab: FaultLab, held_before: dict[str, str], accepted: dict[str, str]) -> set[str]:
    """Jobs delivered before Redis went: held when last looked, or begun by a consumer (the
    run journal every consumer of the lab writes)."""
    begun = lab.journal().started
    return {i for i in accepted if begun[i]} | (set(held_before) & set(accepted))


def ran_twice(lab: FaultLab, accepted: dict[str, str]) -> dict[str, list[str]]:
    """Per consumer, the accepted jobs whose result was stored more than once."""
    stored = lab.journal().stored
    return {
        pool: sorted(i for i, p in accepted.items() if p == pool and stored[i] > 1)
        for pool in ALL_POOLS
    }


def lost_jobs(lab: FaultLab, accepted: dict[str, str]) -> dict[str, list[str]]:
    metas = lab.wait_results(list(accepted), timeout_s=120)
    lost: dict[str, list[str]] = {pool: [] for pool in ALL_POOLS}
    for task_id, pool in accepted.items():
        if metas.get(task_id, {}).get("status") != "SUCCESS":
            lost[pool].append(task_id)
    return lost


def assert_consumers_came_through(lab: FaultLab) -> None:
    for pool in ALL_POOLS:
        name = lab.service_name(pool)
        assert lab.alive(name), lab.log(name)[-3000:]
        assert "Unrecoverable error" not in lab.log(name)
    # the acks of jobs that ran through the outage reached Redis after it came back:
    # nothing stays parked for a second delivery
    wait_until(lambda: lab.db.hlen("unacked") == 0, "every job acknowledged", 30)


def test_jobs_accepted_before_and_after_a_redis_restart_all_complete(outage: Outage) -> None:
    server, lab, base = outage.server, outage.lab, outage.base
    outage.ensure_up()
    accepted: dict[str, str] = {}
    for pool in ALL_POOLS:
        body = {"pool": pool, "kind": "sleep", "params": {"ms": 1000}, "count": 6}
        status, _, answer = call("POST", f"{base}/jobs", body)
        assert status == 202, answer
        accepted.update(dict.fromkeys(answer["ids"], pool))
    # some jobs running, the rest queued, on every consumer, when Redis goes
    snapshot: dict[str, str] = {}

    def every_pool_holds_jobs() -> bool:
        snapshot.clear()
        snapshot.update(held(lab.db))
        return set(snapshot.values()) >= set(ALL_POOLS)

    wait_until(every_pool_holds_jobs, "every consumer running jobs", 60)
    server.stop()
    in_flight = in_flight_ids(lab, snapshot, accepted)

    down_since = time.monotonic()
    job_id = next(iter(accepted))
    requests: list[tuple[str, str, Any]] = [
        ("POST", "/jobs", {"pool": "solo", "kind": "noop", "count": 1}),
        ("GET", f"/jobs/{job_id}", None),
        ("GET", "/healthz", None),
    ]
    while time.monotonic() - down_since < OUTAGE_S:
        for method, path, body in requests:
            assert_unavailable(*call(method, base + path, body), path)

    server.start()
    # the producer reconnects on its own: the first request after the restart that finds
    # Redis answering is accepted
    wait_until(lambda: call("GET", f"{base}/healthz")[0] == 200, "producer healthy")
    for pool in ALL_POOLS:
        body = {"pool": pool, "kind": "sleep", "params": {"ms": 50}, "count": 3}
        status, _, answer = call("POST", f"{base}/jobs", body)
        assert status == 202, answer
        accepted.update(dict.fromkeys(answer["ids"], pool))

    lost = lost_jobs(lab, accepted)
    duplicates = ran_twice(lab, accepted)
    print(
        f"{len(accepted)} jobs accepted, {len(in_flight)} in flight at the outage, "
        f"lost {lost}, ran twice {duplicates}"
    )
    assert lost == {pool: [] for pool in ALL_POOLS}
    assert_consumers_came_through(lab)
    # at least once, not exactly once: a job can run twice only if it was delivered before
    # the outage (kombu puts a closing channel's held jobs back when it can reach Redis);
    # none accepted after it, or still queued during it, ran twice
    assert {i for ids in duplicates.values() for i in ids} <= in_flight


@dataclass
class Feeder:
    """Jobs flowing through the producer to every consumer, one request after the other,
    before, during and after the crash; what each request was answered."""

    base: str
    interval_s: float = 0.04
    accepted: dict[str, str] = field(default_factory=dict)
    accepted_at: dict[str, float] = field(default_factory=dict)
    refused: list[tuple[int, dict[str, str], Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def start(self) -> Feeder:
        self._thread = threading.Thread(target=self._run, name="feeder", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def add(self, ids: list[str], pool: str) -> None:
        with self._lock:
            now = time.monotonic()
            for task_id in ids:
                self.accepted[task_id] = pool
                self.accepted_at[task_id] = now

    def each_pool_has(self, count: int, since: float) -> bool:
        """Whether every consumer was sent ``count`` accepted jobs since then."""
        with self._lock:
            sent = Counter(self.accepted[i] for i, at in self.accepted_at.items() if at >= since)
        return all(sent[pool] >= count for pool in ALL_POOLS)

    def _run(self) -> None:
        turn = 0
        while not self._stop.is_set():
            pool = ALL_POOLS[turn % len(ALL_POOLS)]
            turn += 1
            body = {"pool": pool, "kind": "sleep", "params": {"ms": 100}, "count": 1}
            try:
                status, headers, answer = call("POST", f"{self.base}/jobs", body)
            except (OSError, ValueError) as exc:  # the producer itself must stay up
                self.errors.append(repr(exc))
            else:
                if status == 202:
                    self.add(answer["ids"], pool)
                elif status == 503:
                    self.refused.append((status, headers, answer))
                else:
                    self.errors.append(f"{status} {answer}")
            self._stop.wait(self.interval_s)


def test_a_redis_crash_mid_run_loses_no_accepted_job(outage: Outage) -> None:
    """SIGKILL Redis while jobs flow to every consumer and some run on each; restart it from
    its append-only file on the same port. Every job answered 202 completes (counted by its
    result; running twice is allowed, vanishing is not)."""
    server, lab, base = outage.server, outage.lab, outage.base
    outage.ensure_up()
    appendfsync = lab.db.config_get("appendfsync")["appendfsync"]
    snapshot: dict[str, str] = {}
    feeder = Feeder(base).start()
    try:
        wait_until(lambda: feeder.each_pool_has(FLOWING, since=0), "jobs flowing")
        # and a long job on every consumer, so that each runs one when Redis dies
        for pool in ALL_POOLS:
            body = {"pool": pool, "kind": "sleep", "params": {"ms": 1000}, "count": 1}
            status, _, answer = call("POST", f"{base}/jobs", body)
            assert status == 202, answer
            feeder.add(answer["ids"], pool)

        def every_pool_holds_jobs() -> bool:
            snapshot.clear()
            snapshot.update(held(lab.db))
            return set(snapshot.values()) >= set(ALL_POOLS)

        wait_until(every_pool_holds_jobs, "every consumer running jobs", 60)
        assert server.process is not None
        begun_before_crash = {i for i, n in lab.journal().started.items() if n}
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(10)
        server.stop()  # closes what is left of the dead process
        refused_before = len(feeder.refused)

        # down: the producer refuses, with Retry-After, and publishes nothing
        wait_until(lambda: len(feeder.refused) >= refused_before + 3, "503s while down", 30)
        assert_unavailable(*call("GET", f"{base}/healthz"), "/healthz")

        server.start()  # same port, same directory: the append-only file is loaded
        restarted = time.monotonic()
        wait_until(
            lambda: feeder.each_pool_has(FLOWING, since=restarted),
            "jobs accepted again on every consumer after the restart",
            60,
        )
    finally:
        feeder.stop()
    assert feeder.errors == []
    for answer in feeder.refused:
        assert_unavailable(*answer, "POST /jobs")

    accepted = feeder.accepted
    in_flight = (set(snapshot) | begun_before_crash) & set(accepted)
    lost = lost_jobs(lab, accepted)
    duplicates = ran_twice(lab, accepted)
    per_pool = Counter(accepted.values())
    print(
        f"appendfsync {appendfsync}: {len(accepted)} jobs accepted {dict(per_pool)}, "
        f"{len(feeder.refused)} answered 503 while down, {len(in_flight)} held at the crash, "
        f"lost {lost}, ran twice {duplicates}"
    )
    assert lost == {pool: [] for pool in ALL_POOLS}
    # counted per id from the consumers' own journal: only a job already begun when Redis
    # died may run twice
    assert {i for ids in duplicates.values() for i in ids} <= in_flight
    assert_consumers_came_through(lab)
