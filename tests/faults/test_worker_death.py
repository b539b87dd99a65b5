"""A job whose process dies runs again, in every Celery pool; nothing is lost.

Two ways to die, two ways back (``task_acks_late`` + ``task_reject_on_worker_lost``):

* a prefork *child* killed mid-job: the worker's main process sees the child go, Celery
  rejects the message with ``requeue=True`` and it is delivered again at once, long before
  any visibility timeout (this test's is 300 s);
* a *whole worker* killed: nobody is left to reject anything. The message stays in kombu's
  "unacked" hash in Redis until some consumer of that Redis database sweeps it back to its
  queue (``restore_visible``), which kombu does only for messages older than the visibility
  timeout, and only at a consumer's start and then every ``unacked_restore_interval``. The
  test shows both halves: with no consumer running, the jobs stay parked past the timeout;
  the restarted worker puts them back and runs them.

Each pool's worker has a Redis database of its own, so no other worker sweeps its messages.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from poollab.launcher.redis_server import RedisServer
from poollab.producer.publish import publish
from poollab.settings import CELERY_POOLS
from tests.faults.conftest import FaultLab, make_lab, running, wait_until

pytestmark = pytest.mark.faults

VISIBILITY_S = 3
SHORT_VT = {"POOLLAB_VISIBILITY_TIMEOUT": str(VISIBILITY_S), "POOLLAB_RESTORE_INTERVAL_S": "1"}
CONCURRENCY = {"prefork": 2, "threads": 3, "gevent": 3, "solo": 1}
JOB_MS = 1_500


@pytest.fixture(scope="module")
def labs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FaultLab]]:
    """A worker per Celery pool, each on a database of its own with a 3 s visibility timeout,
    plus a prefork worker with the default 300 s one for the child-kill test."""
    root: Path = tmp_path_factory.mktemp("death")
    with RedisServer() as server:
        found: dict[str, FaultLab] = {
            pool: make_lab(root, f"{server.url}/{db}", (pool,), SHORT_VT, name=pool)
            for db, pool in enumerate(CELERY_POOLS, start=1)
        }
        found["prefork-child"] = make_lab(
            root,
            f"{server.url}/9",
            ("prefork",),
            {"POOLLAB_VISIBILITY_TIMEOUT": "300"},
            name="prefork-child",
        )
        with running(*found.values()):
            yield found


def test_a_prefork_child_killed_mid_job_is_requeued_at_once(labs: dict[str, FaultLab]) -> None:
    lab = labs["prefork-child"]
    long_ids = publish(lab.client, "prefork", "sleep", {"ms": 3_000}, 2)
    short_ids = publish(lab.client, "prefork", "sleep", {"ms": 100}, 2)
    ids = long_ids + short_ids
    wait_until(lambda: sum(lab.runs("prefork").received[i] for i in long_ids) == 2, "2 running")
    main = psutil.Process(lab.pid("worker-prefork"))
    children = main.children()
    assert len(children) == 2, children
    time.sleep(0.5)  # both children are inside their 3 s sleep
    children[0].kill()

    metas = lab.wait_results(ids, timeout_s=60)
    wait_until(
        lambda: all(lab.runs("prefork").succeeded[i] >= 1 for i in metas),
        "every stored result logged",
    )
    runs = lab.runs("prefork")
    log = lab.log("worker-prefork")
    assert "signal 9 (SIGKILL)" in log and "WorkerLostError" in log
    # nothing lost: every job ran to its end, and no job ran to its end twice
    assert {i: m["status"] for i, m in metas.items()} == dict.fromkeys(ids, "SUCCESS")
    assert all(runs.succeeded[i] == 1 for i in ids), runs.succeeded
    # the killed child's job was delivered a second time, within the test's 60 s: far less
    # than the 300 s visibility timeout, so it was the requeue, not the timeout
    assert sorted(runs.received[i] for i in long_ids) == [1, 2]
    assert all(runs.received[i] == 1 for i in short_ids)
    assert lab.alive("worker-prefork")
    assert lab.db.hlen("unacked") == 0


@pytest.mark.parametrize("pool", CELERY_POOLS)
def test_a_worker_killed_whole_loses_nothing_once_restarted(
    labs: dict[str, FaultLab], pool: str
) -> None:
    lab = labs[pool]
    service = lab.service_name(pool)
    held = CONCURRENCY[pool]
    ids = publish(lab.client, pool, "sleep", {"ms": JOB_MS}, held + 2)
    wait_until(lambda: sum(lab.runs(pool).received.values()) >= held, f"{held} jobs held")
    time.sleep(0.3)
    before = lab.runs(pool)
    in_flight = [i for i in ids if before.received[i]]
    assert len(in_flight) == held and not any(before.succeeded[i] for i in ids)
    assert lab.db.hlen("unacked") == held

    lab.kill(service)
    # past the visibility timeout and several sweep intervals: with no consumer on this
    # database nothing sweeps, so the jobs the worker held are still parked, not queued
    time.sleep(VISIBILITY_S + 2.5)
    assert lab.db.hlen("unacked") == held
    assert lab.db.llen(pool) == len(ids) - held

    lab.restart(service)
    metas = lab.wait_results(ids, timeout_s=60)
    lost = [i for i in ids if metas.get(i, {}).get("status") != "SUCCESS"]
    # a worker's log line may reach its file a moment after the result reached Redis
    wait_until(
        lambda: all(lab.runs(pool).succeeded[i] >= 1 for i in ids if i not in lost),
        "every stored result logged",
    )
    runs = lab.runs(pool)
    duplicates = {i: n for i in ids if (n := runs.succeeded[i]) > 1}
    print(
        f"{pool}: {len(ids)} jobs, {held} killed mid-run, lost {len(lost)}, ran twice {duplicates}"
    )
    assert lost == []
    # the killed jobs were delivered again and ran once; no job ran to its end twice
    assert all(runs.received[i] == 2 for i in in_flight), runs.received
    assert all(runs.succeeded[i] == 1 for i in ids), runs.succeeded
    wait_until(lambda: lab.db.hlen("unacked") == 0, "every job acknowledged", timeout_s=10)
