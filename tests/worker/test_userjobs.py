"""The user's own jobs through every pool of a real lab: POOLLAB_JOBS, real workers, real HTTP.

One lab for the module (upstream, producer, a worker per Celery pool and the asyncio
consumer) on its own database of the tests' Redis, with a job module written into a tmp dir
that only POOLLAB_JOBS and PYTHONPATH point at.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest
from celery import Celery

from poollab.celery_config import make_client
from poollab.launcher.lab import Lab
from poollab.launcher.redis_server import RedisServer
from poollab.producer.publish import wait_for
from poollab.settings import ALL_POOLS, PoolName
from tests.user_module import HARD_LIMIT_S, start_user_lab, trap_imported, write_modules

# a prefork child past this after a job is replaced (the leak test grows one well past it)
MAX_MEMORY_PER_CHILD_KB = 150_000
LEAK_KB = 120_000
# well past the hard limit: a job still running at the end of its limit fails
HANG_S = 2 * HARD_LIMIT_S


@pytest.fixture(scope="module")
def jobs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_modules(tmp_path_factory.mktemp("userjobs"))


@pytest.fixture(scope="module")
def user_lab(
    redis_server: RedisServer, jobs_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lab]:
    extra = {"POOLLAB_MAX_MEMORY_PER_CHILD_KB": str(MAX_MEMORY_PER_CHILD_KB)}
    run_dir = tmp_path_factory.mktemp("userlab")
    with start_user_lab(redis_server.url + "/4", jobs_dir, run_dir, ALL_POOLS, extra) as lab:
        yield lab


@pytest.fixture(scope="module")
def client(user_lab: Lab) -> Iterator[Celery]:
    app = make_client("tests-userjobs", user_lab.settings)
    yield app
    app.close()


def _post(lab: Lab, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{lab.settings.producer_port}/jobs",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _get(lab: Lab, task_id: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{lab.settings.producer_port}/jobs/{task_id}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body: dict[str, Any] = json.loads(response.read())
        return body


def _send(lab: Lab, pool: str, task: str, params: dict[str, Any], count: int = 1) -> list[str]:
    status, body = _post(
        lab, {"pool": pool, "kind": "user", "task": task, "params": params, "count": count}
    )
    assert status == 202, body
    ids: list[str] = body["ids"]
    assert len(ids) == count
    return ids


def test_sync_and_async_user_jobs_run_in_every_pool(user_lab: Lab, client: Celery) -> None:
    sent: dict[str, tuple[PoolName, str]] = {}
    before = time.time()
    for pool in ALL_POOLS:
        for function in ("add", "add_async"):
            for task_id in _send(user_lab, pool, f"testjobs:{function}", {"a": 40, "b": 2}, 2):
                sent[task_id] = (pool, function)
    metas = wait_for(client, list(sent), timeout=120)
    for task_id, (pool, function) in sent.items():
        meta = metas[task_id]
        assert meta["status"] == "SUCCESS", (pool, function, meta)
        result = meta["result"]
        assert result["value"]["sum"] == 42
        assert result["pool"] == pool
        timings = result["timings"]
        assert before <= timings["sent"] <= timings["started"] <= timings["finished"]
        # the RSS of the process that ran it, around the job
        assert result["rss_kb"]["before"] > 1000 and result["rss_kb"]["after"] > 1000
    # the asyncio consumer runs a plain callable in its process executor, not in its own pid
    asyncio_sync = [
        metas[i]["result"] for i, (pool, fn) in sent.items() if (pool, fn) == ("asyncio", "add")
    ]
    consumer_pid = user_lab.running["consumer-asyncio"].process.pid
    assert all(r["value"]["pid"] != consumer_pid for r in asyncio_sync)
    # and the API shows the value and who ran it
    state = _get(user_lab, next(iter(sent)))
    assert state["state"] == "SUCCESS" and state["result"]["sum"] == 42
    assert state["worker"]["pool"] in ALL_POOLS


def test_a_job_not_registered_is_refused_and_never_imported(user_lab: Lab, jobs_dir: Path) -> None:
    # trapjobs.py sits on the producer's PYTHONPATH but is not in POOLLAB_JOBS
    for task in ("trapjobs:steal", "os:system", "testjobs:_HELD", "testjobs"):
        status, body = _post(user_lab, {"pool": "solo", "kind": "user", "task": task})
        assert status == 422, (task, body)
        assert body["field"] == "task", body
    assert not trap_imported(jobs_dir)
    status, body = _post(user_lab, {"pool": "solo", "kind": "user", "task": "testjobs:add"})
    assert status == 422 and body["field"] == "params", body  # `a` is required
    assert "missing a required argument: 'a'" in body["errors"][0]["message"]


def _failures(client: Celery, ids: Mapping[str, str], timeout: float = 60) -> dict[str, Any]:
    metas = wait_for(client, list(ids), timeout=timeout)
    for task_id, pool in ids.items():
        assert metas[task_id]["status"] == "FAILURE", (pool, metas[task_id])
    return {pool: metas[task_id]["result"] for task_id, pool in ids.items()}


def _still_serving(lab: Lab, client: Celery, pools: Sequence[str]) -> None:
    """Every pool named still runs the next job."""
    after = {_send(lab, pool, "testjobs:add", {"a": 1})[0]: pool for pool in pools}
    metas = wait_for(client, list(after), timeout=60)
    assert all(meta["status"] == "SUCCESS" for meta in metas.values()), metas


def test_a_raising_job_and_a_non_json_value_are_stored_failures_in_every_pool(
    user_lab: Lab, client: Celery
) -> None:
    raised = {
        _send(user_lab, pool, "testjobs:boom", {"message": "bad input"})[0]: pool
        for pool in ALL_POOLS
    }
    raw = {_send(user_lab, pool, "testjobs:raw", {})[0]: pool for pool in ALL_POOLS}
    for pool, result in _failures(client, raised).items():
        assert result["exc_type"] == "RuntimeError", pool
        assert result["exc_message"] == ["bad input"], pool
    for pool, result in _failures(client, raw).items():
        assert result["exc_type"] == "TypeError", pool
        assert result["exc_message"] == ["user job returned a bytes, which JSON cannot encode"]
    _still_serving(user_lab, client, ALL_POOLS)


def test_a_job_past_its_time_limit_fails_and_the_pool_goes_on(
    user_lab: Lab, client: Celery
) -> None:
    # prefork: the soft limit raises in the job; gevent: the hard limit kills the greenlet;
    # asyncio: the consumer's deadline (the hard one). Threads and solo cannot interrupt a job.
    pools = ("prefork", "gevent", "asyncio")
    hung = {_send(user_lab, pool, "testjobs:hang", {"s": HANG_S})[0]: pool for pool in pools}
    hung_async = _send(user_lab, "asyncio", "testjobs:hang_async", {"s": HANG_S})[0]
    failures = _failures(client, {**hung, hung_async: "asyncio-async"}, timeout=30)
    assert failures["prefork"]["exc_type"] == "SoftTimeLimitExceeded"
    assert failures["gevent"]["exc_type"] == "TimeLimitExceeded"
    assert failures["asyncio"]["exc_type"] == "TimeLimitExceeded"
    assert failures["asyncio-async"]["exc_type"] == "TimeLimitExceeded"
    _still_serving(user_lab, client, pools)


def test_a_leaking_job_shows_its_growth_and_its_prefork_child_is_replaced(
    user_lab: Lab, client: Celery
) -> None:
    task_id = _send(user_lab, "prefork", "testjobs:leak", {"kb": LEAK_KB})[0]
    meta = wait_for(client, [task_id], timeout=60)[task_id]
    assert meta["status"] == "SUCCESS", meta
    rss = meta["result"]["rss_kb"]
    assert rss["after"] - rss["before"] >= LEAK_KB * 0.9, rss
    # past POOLLAB_MAX_MEMORY_PER_CHILD_KB: Celery replaces the child after its job
    pid = meta["result"]["pid"]
    deadline = time.monotonic() + 30
    while psutil.pid_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not psutil.pid_exists(pid), "the leaking prefork child was not replaced"
    after = _send(user_lab, "prefork", "testjobs:add", {"a": 1})[0]
    assert wait_for(client, [after], timeout=60)[after]["status"] == "SUCCESS"


def test_poollab_submit_sends_a_registered_user_job_and_refuses_another(
    user_lab: Lab, jobs_dir: Path
) -> None:
    poollab = str(Path(sys.executable).parent / "poollab")
    base = [poollab, "submit", "--pool", "threads", "--kind", "user"]
    ok = subprocess.run(
        [*base, "--task", "testjobs:add_async", "--params", '{"a": 1}', "--count", "3",
         "--wait", "--json", "--timeout", "60"],
        env=user_lab.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    summary = json.loads(ok.stdout)
    assert summary["completed"] == 3 and summary["failed"] == 0, summary
    for task, params, flag in (
        ("trapjobs:steal", "{}", "--task: not a registered job"),
        ("testjobs:add", '{"nope": 1}', "--params: testjobs:add(a, b=1)"),
        ("testjobs:add", "[1]", "--params: must be a JSON object"),
    ):
        refused = subprocess.run(
            [*base, "--task", task, "--params", params],
            env=user_lab.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert refused.returncode == 2, refused.stderr
        assert flag in refused.stderr, refused.stderr
    assert not trap_imported(jobs_dir)


def test_user_jobs_have_the_time_limits_of_the_kind_user() -> None:
    from poollab.settings import Settings
    from poollab.worker import tasks

    settings = Settings(soft_time_limit_s_by_kind={"user": 1}, time_limit_s_by_kind={"user": 2})
    tasks._check_settings(settings)
    options = tasks._options("user", "poollab.user.m.f", settings)
    assert (options["name"], options["soft_time_limit"], options["time_limit"]) == (
        "poollab.user.m.f",
        1,
        2,
    )
    with pytest.raises(ValueError, match="user: the soft time limit"):
        tasks._check_settings(
            Settings(soft_time_limit_s_by_kind={"user": 3}, time_limit_s_by_kind={"user": 2})
        )
