"""A job whose consumer dies runs again, on every consumer; nothing is lost; runs counted by id.

Runs are counted from the run journal (``POOLLAB_RUN_JOURNAL``, see tests/faults/conftest.py):
a ``start`` line each time a job begins to run, a ``stored`` line each time its result is
written, per task id, from the process that ran it. Jobs are acknowledged late
(``task_acks_late``; the asyncio consumer likewise), so:

* a prefork *child* killed mid-job: the worker's main process sees the child go, Celery
  rejects the message with ``requeue=True`` and it is delivered again at once, long before
  any visibility timeout (this lab's is 300 s). Killed *after* it stored the result, the
  child's job is acknowledged by the main process instead (Celery 5.7 looks the result up):
  it does not run again.
* a *whole consumer* killed mid-job (each Celery pool, and the asyncio consumer): nobody is
  left to reject anything. The message stays in kombu's ``unacked`` hash in Redis until some
  consumer of that Redis database sweeps it back to its queue (``restore_visible``), which is
  done only for messages older than the visibility timeout, at a consumer's start and then
  every restore interval. The test shows both halves: with no consumer running the jobs stay
  parked past the timeout; the restarted consumer puts them back and runs them.
* a whole consumer killed *after a job's result was stored and before its message was
  acknowledged*: the one window in which a job runs to its end twice. A test-only pause
  (``POOLLAB_TEST_PAUSE_AFTER_STORE_S``) holds every job there, the journal's ``stored`` line
  tells the test the window is open, and it kills then. The asyncio consumer stores results
  and acknowledges in one Redis script when results live in the broker's Redis: there it
  has no such window (tested); with results in another Redis it has (tested).

Each lab has Redis databases of its own, so no other consumer sweeps its messages, and the
labs' scenarios run side by side (a thread per lab, in the module's ``outcomes`` fixture):
the module takes about as long as its slowest lab, not the sum of them.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from poollab.hooks.journal import read_journal
from poollab.launcher.redis_server import RedisServer
from poollab.producer.publish import publish
from poollab.settings import ALL_POOLS, CELERY_POOLS
from tests.faults.conftest import FaultLab, make_lab, running, wait_until

pytestmark = pytest.mark.faults

VISIBILITY_S = 3
SHORT_VT = {"POOLLAB_VISIBILITY_TIMEOUT": str(VISIBILITY_S), "POOLLAB_RESTORE_INTERVAL_S": "1"}
# the test-only pause after a result is stored: the test kills within a poll of the journal
# (50 ms); the pause only has to outlast that by far
PAUSE = {"POOLLAB_TEST_PAUSE_AFTER_STORE_S": "30"}
PAUSE_OFF = {"POOLLAB_TEST_PAUSE_AFTER_STORE_S": "0"}
CONCURRENCY = {"prefork": 2, "threads": 3, "gevent": 3, "solo": 1, "asyncio": 3}
JOB_MS = 1_500
SPLIT = "asyncio-split"  # the asyncio consumer with its results in another Redis database
CHILD = "prefork-child"  # a prefork worker with the default 300 s visibility timeout


def _redis_state(lab: FaultLab, pool: str) -> str:
    """What a failed wait should show: the held messages, the queue, kombu's restore mutex."""
    return (
        f"unacked {lab.db.hlen('unacked')} (index {lab.db.zcard('unacked_index')}), "
        f"queued {lab.db.llen(pool)}, restore mutex ttl {lab.db.ttl('unacked_mutex')} s"
    )


def _window(lab: FaultLab, pool: str, twice: bool) -> str:
    """Kill the whole consumer between a job's stored result and its ack; restart it."""
    service = lab.service_name(pool)
    job = publish(lab.client, pool, "sleep", {"ms": 100}, 1)[0]
    wait_until(lambda: lab.journal().stored[job] == 1, "the result stored", timeout_s=60)
    lab.kill(service)
    print(f"{pool} killed in the window: {_redis_state(lab, pool)}")
    # the window: its result is in Redis, its message still held
    assert lab.wait_results([job], timeout_s=10)[job]["status"] == "SUCCESS"
    assert lab.db.hlen("unacked") == (1 if twice else 0)
    later = publish(lab.client, pool, "sleep", {"ms": 100}, 2)  # queued while it is down
    lab.restart(service, **PAUSE_OFF)
    ids = [job, *later]
    metas = lab.wait_results(ids, timeout_s=60)
    assert [i for i in ids if metas.get(i, {}).get("status") != "SUCCESS"] == []  # 0 lost
    runs_of_job = 2 if twice else 1
    wait_until(
        lambda: (
            lab.journal().stored[job] == runs_of_job
            and all(lab.journal().stored[i] == 1 for i in later)
        ),
        "every run journaled",
        timeout_s=60,
        explain=lambda: f"{_redis_state(lab, pool)}; {lab.journal()}",
    )
    wait_until(lambda: lab.db.hlen("unacked") == 0, "every job acknowledged", timeout_s=20)
    runs = lab.journal()
    assert (runs.started[job], runs.stored[job]) == (runs_of_job, runs_of_job), runs
    if twice:  # once in the killed consumer, once in the restarted one
        assert len(set(runs.pids[job])) == 2, runs.pids[job]
    assert all((runs.started[i], runs.stored[i]) == (1, 1) for i in later), runs
    return f"ran {runs_of_job}x, {len(later)} others once"


def _whole(lab: FaultLab, pool: str) -> str:
    """Kill the whole consumer while it runs jobs; nothing sweeps them back until it restarts."""
    service = lab.service_name(pool)
    held = CONCURRENCY[pool]
    ids = publish(lab.client, pool, "sleep", {"ms": JOB_MS}, held + 2)
    wait_until(lambda: sum(lab.journal().started[i] for i in ids) >= held, f"{held} jobs running")
    time.sleep(0.3)
    before = lab.journal()
    in_flight = [i for i in ids if before.started[i]]
    assert len(in_flight) == held and not any(before.stored[i] for i in ids)
    assert lab.db.hlen("unacked") == held

    lab.kill(service)
    print(f"{pool} killed mid-job: {_redis_state(lab, pool)}")
    # past the visibility timeout and several sweep intervals: with no consumer on this
    # database nothing sweeps, so the jobs it held are still parked, not queued
    time.sleep(VISIBILITY_S + 2.5)
    assert lab.db.hlen("unacked") == held
    assert lab.db.llen(pool) == len(ids) - held

    lab.restart(service)
    metas = lab.wait_results(ids, timeout_s=60)
    lost = [i for i in ids if metas.get(i, {}).get("status") != "SUCCESS"]
    assert lost == [], _redis_state(lab, pool)
    wait_until(
        lambda: all(lab.journal().stored[i] >= 1 for i in ids),
        "every stored result journaled",
        explain=lambda: f"{_redis_state(lab, pool)}; {lab.journal()}",
    )
    wait_until(lambda: lab.db.hlen("unacked") == 0, "every job acknowledged", timeout_s=10)
    runs = lab.journal()
    # the killed jobs began twice and ran to their end once; the queued ones ran once
    assert all(runs.started[i] == 2 for i in in_flight), runs.started
    assert all(runs.started[i] == 1 for i in ids if i not in in_flight), runs.started
    assert all(runs.stored[i] == 1 for i in ids), runs.stored
    return f"{len(ids)} jobs, {held} killed mid-run, lost 0, each run again once"


def _swept(lab: FaultLab, pool: str) -> str:
    """A job held by a consumer that died (in ``unacked``, never acknowledged) is put back by
    a running consumer's periodic sweep once older than the visibility timeout: no restart."""
    parked = f"parked-{pool}"  # a queue nobody consumes: the message is taken from it by hand
    job = lab.client.send_task("poollab.sleep", kwargs={"ms": 100}, queue=parked).id
    raw = lab.db.rpop(parked)
    assert raw is not None
    message = json.loads(raw)
    tag = message["properties"]["delivery_tag"]
    held_at = time.time()
    # held as kombu holds what it delivered: [message, exchange, routing key], and its time
    lab.db.hset("unacked", tag, json.dumps([message, "", pool]))
    lab.db.zadd("unacked_index", {tag: held_at})
    pid = lab.pid(lab.service_name(pool))
    wait_until(
        lambda: lab.journal().stored[job] == 1,
        "the swept job run",
        timeout_s=VISIBILITY_S + 20,
        explain=lambda: _redis_state(lab, pool),
    )
    started = next(line.t for line in read_journal(lab.journal_path) if line.task_id == job)
    wait_until(lambda: lab.db.hlen("unacked") == 0, "acknowledged", timeout_s=10)
    assert started - held_at >= VISIBILITY_S  # not before its time
    assert lab.pid(lab.service_name(pool)) == pid and lab.alive(lab.service_name(pool))
    return f"put back and run {started - held_at:.1f} s after it was held"


def _child_after_store(lab: FaultLab) -> str:
    """Kill the prefork child that stored a job's result, before the main process acks it."""
    job = publish(lab.client, "prefork", "sleep", {"ms": 100}, 1)[0]
    wait_until(lambda: lab.journal().stored[job] == 1, "the result stored", timeout_s=60)
    os.kill(lab.journal().pids[job][0], signal.SIGKILL)
    wait_until(lambda: lab.db.hlen("unacked") == 0, "the message acknowledged", timeout_s=30)
    assert "succeeded before the worker was lost" in lab.log("worker-prefork")
    lab.restart("worker-prefork", **PAUSE_OFF)  # the next scenario wants no pause
    # a job sent now runs; the killed child's job, had it been put back, would run before it
    after = publish(lab.client, "prefork", "sleep", {"ms": 100}, 1)[0]
    assert lab.wait_results([after], timeout_s=30)[after]["status"] == "SUCCESS"
    wait_until(lambda: lab.db.hlen("unacked") == 0, "acknowledged", timeout_s=10)
    assert lab.db.llen("prefork") == 0
    runs = lab.journal()
    assert (runs.started[job], runs.stored[job]) == (1, 1), runs
    return "ran once: acknowledged by the main process"


def _child_mid_job(lab: FaultLab) -> str:
    long_ids = publish(lab.client, "prefork", "sleep", {"ms": 3_000}, 2)
    short_ids = publish(lab.client, "prefork", "sleep", {"ms": 100}, 2)
    ids = long_ids + short_ids
    wait_until(lambda: all(lab.journal().started[i] for i in long_ids), "2 running")
    time.sleep(0.5)  # both children are inside their 3 s sleep
    killed = long_ids[0]
    os.kill(lab.journal().pids[killed][0], signal.SIGKILL)

    metas = lab.wait_results(ids, timeout_s=60)
    wait_until(lambda: all(lab.journal().stored[i] >= 1 for i in metas), "results journaled")
    log = lab.log("worker-prefork")
    assert "signal 9 (SIGKILL)" in log and "WorkerLostError" in log
    # nothing lost: every job ran to its end, and no job ran to its end twice
    assert {i: m["status"] for i, m in metas.items()} == dict.fromkeys(ids, "SUCCESS")
    runs = lab.journal()
    assert all(runs.stored[i] == 1 for i in ids), runs.stored
    # the killed child's job began a second time within the test's 60 s: far less than the
    # 300 s visibility timeout, so it was the requeue, not the timeout
    assert runs.started[killed] == 2, runs.started
    assert all(runs.started[i] == 1 for i in ids if i != killed), runs.started
    assert lab.alive("worker-prefork")
    wait_until(lambda: lab.db.hlen("unacked") == 0, "every job acknowledged", timeout_s=10)
    return "requeued at once, ran to its end once"


# each lab's scenarios, in order (a scenario's restart turns the pause off for the next)
def _scenarios(name: str) -> list[tuple[str, Callable[[FaultLab], str]]]:
    if name == CHILD:
        return [("child-after-store", _child_after_store), ("child-mid-job", _child_mid_job)]
    if name == SPLIT:
        return [(f"window-{SPLIT}", lambda lab: _window(lab, "asyncio", twice=True))]
    twice = name != "asyncio"  # stores and acks in one script: no window
    return [
        (f"window-{name}", lambda lab: _window(lab, name, twice)),
        (f"whole-{name}", lambda lab: _whole(lab, name)),
        (f"swept-{name}", lambda lab: _swept(lab, name)),
    ]


@pytest.fixture(scope="module")
def labs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FaultLab]]:
    """A consumer per pool, each on a database of its own with a 3 s visibility timeout; the
    asyncio consumer once more with its results in another database; a prefork worker with
    the default 300 s timeout for the child kills. All start with the pause after store on."""
    root: Path = tmp_path_factory.mktemp("death")
    with RedisServer() as server:
        found: dict[str, FaultLab] = {
            pool: make_lab(root, f"{server.url}/{db}", (pool,), {**SHORT_VT, **PAUSE}, name=pool)
            for db, pool in enumerate(ALL_POOLS, start=1)
        }
        found[SPLIT] = make_lab(
            root,
            f"{server.url}/6",
            ("asyncio",),
            {**SHORT_VT, **PAUSE, "POOLLAB_RESULT_BACKEND": f"{server.url}/7"},
            name=SPLIT,
        )
        found[CHILD] = make_lab(
            root,
            f"{server.url}/9",
            ("prefork",),
            {"POOLLAB_VISIBILITY_TIMEOUT": "300", **PAUSE},
            name=CHILD,
        )
        with running(*found.values()):
            yield found


@pytest.fixture(scope="module")
def outcomes(labs: dict[str, FaultLab]) -> dict[str, str | BaseException]:
    """Every lab's scenarios, the labs side by side: what each found, or how it failed."""
    found: dict[str, str | BaseException] = {}

    def run(name: str) -> None:
        failed = ""
        for scenario, action in _scenarios(name):
            if failed:
                found[scenario] = AssertionError(f"not run: {failed} failed first")
                continue
            started = time.monotonic()
            try:
                found[scenario] = action(labs[name])
            except BaseException as exc:  # reported by the scenario's own test
                found[scenario], failed = exc, scenario
            print(f"{scenario}: {found[scenario]!r} ({time.monotonic() - started:.1f} s)")

    with ThreadPoolExecutor(max_workers=len(labs)) as pool:
        list(pool.map(run, labs))
    return found


def _check(outcomes: dict[str, str | BaseException], scenario: str) -> None:
    outcome = outcomes[scenario]
    if isinstance(outcome, BaseException):
        raise outcome


def test_a_prefork_child_killed_mid_job_is_requeued_at_once(
    outcomes: dict[str, str | BaseException],
) -> None:
    _check(outcomes, "child-mid-job")


def test_a_prefork_child_killed_after_the_store_is_acknowledged_not_run_again(
    outcomes: dict[str, str | BaseException],
) -> None:
    _check(outcomes, "child-after-store")


@pytest.mark.parametrize("pool", ALL_POOLS)
def test_a_consumer_killed_whole_mid_job_loses_nothing_and_runs_it_again_once(
    outcomes: dict[str, str | BaseException], pool: str
) -> None:
    _check(outcomes, f"whole-{pool}")


@pytest.mark.parametrize("pool", ALL_POOLS)
def test_a_running_consumer_puts_back_what_a_dead_one_held_after_the_visibility_timeout(
    outcomes: dict[str, str | BaseException], pool: str
) -> None:
    _check(outcomes, f"swept-{pool}")


@pytest.mark.parametrize("name", [*CELERY_POOLS, SPLIT])
def test_a_kill_between_store_and_ack_runs_that_job_twice_and_no_other(
    outcomes: dict[str, str | BaseException], name: str
) -> None:
    _check(outcomes, f"window-{name}")


def test_the_asyncio_consumer_stores_and_acks_at_once_so_a_kill_after_the_store_repeats_nothing(
    outcomes: dict[str, str | BaseException],
) -> None:
    _check(outcomes, "window-asyncio")
