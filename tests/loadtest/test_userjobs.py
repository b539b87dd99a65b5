"""Locust's users send the user's own jobs: ``--load-kinds user:MODULE:FUNCTION``."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from poollab.launcher.lab import Lab
from poollab.launcher.redis_server import RedisServer
from tests.loadtest.test_locust import POOLLAB, loadmix
from tests.user_module import start_user_lab, write_modules

__all__ = ["loadmix"]  # the fixture, imported for these tests

USER_KIND = "user:testjobs:add"


def test_a_user_kind_is_sent_as_its_task_with_the_user_params(loadmix: Any) -> None:
    mix = loadmix.build_mix(
        "solo,asyncio", f"cpu,{USER_KIND}", '{"cpu": {"n": 10}}', 10.0, user_params='{"a": 2}'
    )
    user = [job for job in mix.jobs if job.kind == USER_KIND]
    assert [job.pool for job in user] == ["solo", "asyncio"]
    job = user[0]
    assert job.name == f"solo:{USER_KIND}"
    assert job.task_name == "poollab.user.testjobs.add"
    assert job.request_body() == {
        "pool": "solo", "kind": "user", "task": "testjobs:add", "params": {"a": 2},
    }  # fmt: skip
    cpu = next(job for job in mix.jobs if job.kind == "cpu")
    assert (cpu.task_name, cpu.request_body()["params"]) == ("poollab.cpu", {"n": 10})
    # a job's own entry in --load-params goes over --load-user-params
    mix = loadmix.build_mix(
        "solo", USER_KIND, json.dumps({USER_KIND: {"b": 5}}), 10.0, user_params='{"a": 2}'
    )
    assert mix.jobs[0].params == {"a": 2, "b": 5}


@pytest.mark.parametrize(
    ("kinds", "user_params", "message"),
    [
        ("user:testjobs", "", "is not MODULE:FUNCTION"),
        ("user:", "", "is not MODULE:FUNCTION"),
        ("usr:testjobs:add", "", "or user:MODULE:FUNCTION"),
        (USER_KIND, "[1]", "must be a JSON object"),
        (USER_KIND, "{", "not JSON"),
    ],
)
def test_a_bad_user_kind_is_refused_before_anything_is_sent(
    loadmix: Any, kinds: str, user_params: str, message: str
) -> None:
    with pytest.raises(loadmix.MixError, match=message):
        loadmix.build_mix("solo", kinds, "", 10.0, user_params=user_params)


@pytest.fixture(scope="module")
def lab(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    jobs_dir = write_modules(tmp_path_factory.mktemp("loadjobs"))
    run_dir = tmp_path_factory.mktemp("loadlab")
    with start_user_lab(redis_server.url + "/5", jobs_dir, run_dir, ("solo", "asyncio")) as lab:
        yield lab


def test_locust_users_run_a_user_job_through_the_api_and_the_broker(
    lab: Lab, tmp_path: Path
) -> None:
    out = tmp_path / "load"
    ids_file = tmp_path / "ids.tsv"
    env = {
        **lab.env,
        "POOLLAB_LOAD_IDS_FILE": str(ids_file),
        "POOLLAB_LOAD_USER_PARAMS": '{"a": 40, "b": 2}',
    }
    result = subprocess.run(
        [POOLLAB, "load", "-u", "4", "-r", "4", "-t", "5s", "--pools", "solo,asyncio",
         "--kinds", USER_KIND, "--job-timeout", "20", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    rows = json.loads((out / "load.json").read_text())["rows"]
    names = {(row["type"], row["name"]) for row in rows}
    assert names == {
        (via, f"{pool}:{USER_KIND}") for via in ("http", "celery") for pool in ("solo", "asyncio")
    }
    assert all(row["requests"] > 0 and row["failures"] == 0 for row in rows), rows
    lines = [line.split("\t") for line in ids_file.read_text().splitlines()]
    client = redis.Redis.from_url(lab.settings.broker_url)
    try:
        metas = client.mget([f"celery-task-meta-{job_id}" for _, _, job_id, _ in lines])
    finally:
        client.close()
    for (_, name, _, _), raw in zip(lines, metas, strict=True):
        assert raw is not None
        meta = json.loads(raw)
        assert meta["status"] == "SUCCESS" and meta["result"]["value"]["sum"] == 42, meta
        assert meta["result"]["pool"] == name.split(":")[0]
