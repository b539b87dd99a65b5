"""The user's own jobs on the real asyncio consumer: plain ones in its executor, async ones on
its loop, sent by name with ``send_task``; a failure of any kind is stored and the consumer
goes on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from poollab import jobs
from poollab.hooks.liveness import alive_key
from poollab.producer.publish import wait_for
from tests.consumer.conftest import ConsumerFactory
from tests.user_module import HARD_LIMIT_S, user_env, write_modules


@pytest.fixture
def env(consumer_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return user_env(consumer_env, write_modules(tmp_path / "jobs"))


def _run(client: Celery, task: str, **params: Any) -> dict[str, Any]:
    task_id = client.send_task(f"poollab.user.testjobs.{task}", kwargs=params, queue="asyncio").id
    meta: dict[str, Any] = wait_for(client, [task_id], timeout=60)[task_id]
    return meta


@pytest.mark.parametrize("executor", ["process", "thread"])
def test_plain_and_async_jobs_with_each_executor(
    start_consumer: ConsumerFactory, env: dict[str, str], client: Celery, executor: str
) -> None:
    consumer = start_consumer(env, "-c", "4", "--cpu-executor", executor, "--cpu-workers", "1")
    plain, awaited = _run(client, "add", a=1, b=2), _run(client, "add_async", a=3)
    assert plain["status"] == "SUCCESS" and awaited["status"] == "SUCCESS", (plain, awaited)
    assert plain["result"]["value"]["sum"] == 3 and awaited["result"]["value"]["sum"] == 4
    assert plain["result"]["pool"] == "asyncio"
    consumer_pid = consumer.process.pid
    # the process executor runs it in a child; the thread executor and the loop, in the consumer
    assert (plain["result"]["value"]["pid"] != consumer_pid) == (executor == "process")
    assert awaited["result"]["value"]["pid"] == consumer_pid
    assert plain["result"]["rss_kb"]["after"] > 0
    # where each one runs is recorded with the consumer's info, under its liveness key
    live = redis.Redis.from_url(env["POOLLAB_BROKER_URL"]).get(alive_key(consumer.nodename))
    assert live is not None
    info = json.loads(live)
    assert info["user_jobs"]["poollab.user.testjobs.add"] == f"{executor} executor"
    assert info["user_jobs"]["poollab.user.testjobs.add_async"] == "event loop"


def test_failures_are_stored_and_the_consumer_goes_on(
    start_consumer: ConsumerFactory, env: dict[str, str], client: Celery
) -> None:
    consumer = start_consumer(env, "-c", "4", "--cpu-workers", "1")
    raised = _run(client, "boom", message="bad input")
    assert raised["status"] == "FAILURE"
    assert (raised["result"]["exc_type"], raised["result"]["exc_message"]) == (
        "RuntimeError",
        ["bad input"],
    )
    raw = _run(client, "raw")
    assert raw["status"] == "FAILURE" and raw["result"]["exc_type"] == "TypeError"
    assert raw["result"]["exc_message"] == ["user job returned a bytes, which JSON cannot encode"]
    wrong = _run(client, "add", c=1)
    assert wrong["status"] == "FAILURE" and wrong["result"]["exc_type"] == "TypeError"
    # past the hard limit: the plain one fails though its executor process keeps sleeping
    for task in ("hang", "hang_async"):
        hung = _run(client, task, s=2 * HARD_LIMIT_S)
        assert hung["status"] == "FAILURE", hung
        assert hung["result"]["exc_type"] == "TimeLimitExceeded", hung
    # a child of the process executor that dies breaks the pool: that job fails, the pool is
    # replaced, and the next plain job runs
    died = _run(client, "die")
    assert died["status"] == "FAILURE" and died["result"]["exc_type"] == "BrokenProcessPool"
    after = _run(client, "add", a=1)
    assert after["status"] == "SUCCESS", after
    # the built-in cpu kind runs in the same executor: it too finds the new pool
    task_id = client.send_task("poollab.cpu", kwargs={"n": 1000}, queue="asyncio").id
    cpu = wait_for(client, [task_id], timeout=60)[task_id]
    assert cpu["status"] == "SUCCESS" and cpu["result"]["value"] == jobs.cpu_work(1000), cpu
    assert consumer.process.poll() is None
