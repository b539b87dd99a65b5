"""Every job kind through every pool, on real Redis and real worker processes."""

from __future__ import annotations

import time
from typing import Any

import pytest
from celery import Celery

from poollab import jobs
from poollab.celery_config import make_client
from poollab.launcher.lab import Lab
from poollab.producer.publish import publish, wait_for

KIND_PARAMS: dict[str, dict[str, Any]] = {
    "noop": {"x": {"hello": ["world", 1]}},
    "sleep": {"ms": 20},
    "cpu": {"n": 20_000},
    "io": {"ms": 20, "bytes": 100},
    "mixed": {"n": 5_000, "ms": 10},
}


@pytest.fixture(scope="module")
def client(running_lab: Lab) -> Celery:
    return make_client("tests", running_lab.settings)


def pools(lab: Lab) -> list[str]:
    return [run.service.pool for run in lab.running.values() if run.service.pool]


def test_every_kind_through_every_pool_returns_the_right_value(
    running_lab: Lab, client: Celery
) -> None:
    sent: dict[str, tuple[str, str, dict[str, Any]]] = {}
    before = time.time()
    for pool in pools(running_lab):
        for kind, params in KIND_PARAMS.items():
            for task_id in publish(client, pool, kind, params, count=2):
                sent[task_id] = (pool, kind, params)
    metas = wait_for(client, list(sent), timeout=120)
    assert set(metas) == set(sent)
    for task_id, (pool, kind, params) in sent.items():
        meta = metas[task_id]
        assert meta["status"] == "SUCCESS", (pool, kind, meta)
        result = meta["result"]
        assert result["value"] == jobs.expected_value(kind, params), (pool, kind)
        assert result["pool"] == pool
        assert result["pid"] > 0
        timings = result["timings"]
        assert before <= timings["sent"] <= timings["started"] <= timings["finished"]
        assert timings["finished"] <= time.time()


def _makespan(client: Celery, pool: str, count: int, ms: int) -> float:
    ids = publish(client, pool, "io", {"ms": ms}, count)
    metas = wait_for(client, ids, timeout=120)
    results = [m["result"] for m in metas.values()]
    assert len(results) == count and all(m["status"] == "SUCCESS" for m in metas.values())
    return max(r["timings"]["finished"] for r in results) - min(
        r["timings"]["started"] for r in results
    )


def test_gevent_and_threads_overlap_io_while_solo_does_not(
    running_lab: Lab, client: Celery
) -> None:
    count, ms = 10, 300
    solo = _makespan(client, "solo", count, ms)
    gevent = _makespan(client, "gevent", count, ms)
    threads = _makespan(client, "threads", count, ms)
    # solo runs one job at a time: its makespan cannot be below N × L
    assert solo >= count * ms / 1000 * 0.95
    # N concurrent jobs of L ms finish in about L, not N × L: compared side by side, so a
    # slow machine slows both sides
    assert gevent < solo / 3, (gevent, solo)
    assert threads < solo / 3, (threads, solo)


def test_a_failing_job_is_stored_as_a_failure(running_lab: Lab, client: Celery) -> None:
    ids = publish(client, "threads", "io", {"ms": 1, "fail_rate": 1.0}, count=1)
    meta = wait_for(client, ids, timeout=60)[ids[0]]
    assert meta["status"] == "FAILURE"
    assert "500" in str(meta["result"])


def test_bad_params_sent_past_the_producer_fail_without_running(
    running_lab: Lab, client: Celery
) -> None:
    task_id = client.send_task("poollab.sleep", kwargs={"ms": -5}, queue="solo").id
    meta = wait_for(client, [task_id], timeout=60)[task_id]
    assert meta["status"] == "FAILURE"
    assert "ms" in str(meta["result"])
