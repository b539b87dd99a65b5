"""Slow and failing upstream: time limits per kind, failures with their reason, retries.

Limits come from the settings (``POOLLAB_SOFT_TIME_LIMIT_S_BY_KIND``,
``POOLLAB_TIME_LIMIT_S_BY_KIND``) and are enforced by the pool: prefork both (the soft one
raises ``SoftTimeLimitExceeded`` inside the job, the hard one kills the child), gevent the
hard one only, threads and solo neither — a thread cannot be interrupted, and the tests pin
that down so the documentation cannot drift from it. Retries (``POOLLAB_RETRY_KINDS``) run
against the real upstream answering 500.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from poollab.launcher.redis_server import RedisServer
from poollab.producer.publish import job_state, publish
from tests.faults.conftest import FaultLab, make_lab, running

pytestmark = pytest.mark.faults

LIMITS_ENV = {
    "POOLLAB_SOFT_TIME_LIMIT_S_BY_KIND": '{"sleep": 1, "cpu": 0}',
    "POOLLAB_TIME_LIMIT_S_BY_KIND": '{"sleep": 3, "cpu": 1}',
    "POOLLAB_RETRY_KINDS": "io",
    "POOLLAB_MAX_RETRIES": "2",
    "POOLLAB_RETRY_BACKOFF_S": "1",
    # no jitter: the waits are exactly 1 s then 2 s, so their sum is a lower bound to check
    "POOLLAB_RETRY_JITTER": "false",
}
_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): ", re.MULTILINE)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultLab]:
    root: Path = tmp_path_factory.mktemp("limits")
    with RedisServer() as server:
        fault_lab = make_lab(
            root,
            server.url + "/0",
            ("prefork", "threads", "gevent"),
            LIMITS_ENV,
            with_upstream=True,
        )
        with running(fault_lab):
            yield fault_lab


def _error(lab: FaultLab, task_id: str) -> dict[str, str]:
    state = job_state(lab.client, task_id)
    assert state["state"] == "FAILURE", state
    error: dict[str, str] = state["error"]
    return error


def test_time_limits_per_kind_and_what_each_pool_enforces(lab: FaultLab) -> None:
    soft = publish(lab.client, "prefork", "sleep", {"ms": 3_500}, 1)[0]
    # cpu has no soft limit: only the kill at 1 s can stop it
    hard = publish(lab.client, "prefork", "cpu", {"n": 400_000_000}, 1)[0]
    gevent = publish(lab.client, "gevent", "sleep", {"ms": 3_500}, 1)[0]
    threads = publish(lab.client, "threads", "sleep", {"ms": 3_500}, 1)[0]
    metas = lab.wait_results([soft, hard, gevent, threads], timeout_s=90)
    assert len(metas) == 4

    assert _error(lab, soft)["type"] == "SoftTimeLimitExceeded"
    assert _error(lab, hard)["type"] == "TimeLimitExceeded"
    assert _error(lab, gevent)["type"] == "TimeLimitExceeded"
    # a thread cannot be interrupted: the job ran past both limits to its end
    assert metas[threads]["status"] == "SUCCESS"

    prefork = lab.runs("prefork")
    # a job stopped by its limit is acknowledged, not delivered again (acks_on_timeout)
    assert prefork.received[soft] == 1 and prefork.received[hard] == 1
    assert lab.runs("gevent").received[gevent] == 1
    assert "Hard time limit (1.0s) exceeded" in lab.log("worker-prefork")
    # the killed child was replaced: the worker still runs jobs
    (after,) = publish(lab.client, "prefork", "noop", {"x": 1}, 1)
    assert lab.wait_results([after], timeout_s=30)[after]["status"] == "SUCCESS"


def _stamps(log: str, task_id: str) -> list[datetime]:
    """Times of the log lines that name this job."""
    stamps = []
    for match in _STAMP.finditer(log):
        line_end = log.find("\n", match.end())
        if task_id in log[match.end() : line_end]:
            stamps.append(datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f"))
    return stamps


@pytest.mark.parametrize("pool", ["threads", "gevent"])
def test_a_failing_upstream_is_retried_with_backoff_then_recorded(lab: FaultLab, pool: str) -> None:
    (task_id,) = publish(lab.client, pool, "io", {"ms": 1, "fail_rate": 1.0}, 1)
    (refused,) = publish(lab.client, pool, "io", {"ms": 1}, 1)
    # a job refusing its input (JobError) is a failure to record, not to retry
    bad = lab.client.send_task("poollab.io", kwargs={"ms": -1}, queue=pool).id
    metas = lab.wait_results([task_id, refused, bad], timeout_s=60)
    assert metas[refused]["status"] == "SUCCESS"

    error = _error(lab, task_id)
    assert error["type"] == "UpstreamError"
    assert "upstream answered 500" in error["message"]
    runs = lab.runs(pool)
    # 1 attempt + POOLLAB_MAX_RETRIES=2 retries, each a message of its own
    assert runs.received[task_id] == 3
    assert runs.retried[task_id] == 2
    assert runs.raised[task_id] == 1
    log = lab.log(f"worker-{pool}")
    assert "Retry in 1s" in log and "Retry in 2s" in log
    stamps = _stamps(log, task_id)
    # backoff 1 s then 2 s: the last attempt cannot end sooner than 3 s after the first
    # (a lower bound only: a busy machine makes it later, never earlier)
    assert (stamps[-1] - stamps[0]).total_seconds() >= 2.9

    assert _error(lab, bad)["type"] == "JobError"
    assert runs.received[bad] == 1 and runs.retried[bad] == 0
