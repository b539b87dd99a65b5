"""``POST /jobs`` with kind ``user`` on real HTTP and a real Redis: a registered job is
published as its task with the params as kwargs; any other name is refused, never imported."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from poollab import userjobs
from poollab.producer.app import create_app
from poollab.settings import Settings, get_settings
from tests.user_module import trap_imported, write_modules

Api = tuple[str, ClientSession]


@pytest.fixture
def jobs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The test modules, importable from the cwd, registered through POOLLAB_JOBS."""
    directory = write_modules(tmp_path)
    monkeypatch.chdir(directory)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("POOLLAB_JOBS", "testjobs")
    get_settings.cache_clear()
    userjobs.registered.cache_clear()
    yield directory
    userjobs.registered.cache_clear()
    get_settings.cache_clear()
    for name in ("testjobs", "trapjobs"):
        sys.modules.pop(name, None)


@pytest.fixture
async def api(redis_url: str, jobs_dir: Path) -> AsyncIterator[Api]:
    server = TestServer(create_app(Settings(broker_url=redis_url)), host="127.0.0.1")
    await server.start_server()
    async with ClientSession() as session:
        yield f"http://127.0.0.1:{server.port}", session
    await server.close()


async def _post(api: Api, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    base, session = api
    async with session.post(f"{base}/jobs", json=body) as response:
        return response.status, await response.json()


async def test_a_registered_job_is_published_as_its_task(api: Api, redis_url: str) -> None:
    body = {
        "pool": "threads",
        "kind": "user",
        "task": "testjobs:add",
        "params": {"a": 2, "b": [1, {"x": None}]},
        "count": 3,
    }
    status, answer = await _post(api, body)
    assert status == 202, answer
    assert len(answer["ids"]) == 3
    client = redis.Redis.from_url(redis_url)
    assert client.llen("threads") == 3
    raw = client.lindex("threads", 0)
    assert raw is not None
    message = json.loads(raw)
    assert message["headers"]["task"] == "poollab.user.testjobs.add"
    assert message["headers"]["poollab_sent"] > 0
    # the params are the task's kwargs, as send_task(name, kwargs=params) would send them
    args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    assert args == [] and kwargs == {"a": 2, "b": [1, {"x": None}]}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"task": "trapjobs:steal"}, "task", "not a registered job; registered: testjobs:add"),
        ({"task": "os:system", "params": {"command": "true"}}, "task", "not a registered job"),
        ({"task": "testjobs:_HELD"}, "task", "not a registered job"),
        ({}, "task", "required for kind user"),
        ({"task": "testjobs:add"}, "params", "missing a required argument: 'a'"),
        ({"task": "testjobs:add", "params": {"a": 1, "c": 2}}, "params", "unexpected keyword"),
        ({"task": "testjobs:add", "params": [1]}, "params", "valid dictionary"),
    ],
)
async def test_anything_not_registered_is_refused_and_never_imported(
    api: Api, jobs_dir: Path, redis_url: str, body: dict[str, Any], field: str, message: str
) -> None:
    status, answer = await _post(api, {"pool": "solo", "kind": "user", **body})
    assert status == 422, answer
    assert answer["field"] == field, answer
    assert message in answer["errors"][0]["message"], answer
    # trapjobs.py is importable from here, but a request naming it imports nothing
    assert "trapjobs" not in sys.modules
    assert not trap_imported(jobs_dir)
    assert redis.Redis.from_url(redis_url).llen("solo") == 0


async def test_task_is_only_for_kind_user(api: Api) -> None:
    body = {"pool": "solo", "kind": "noop", "task": "testjobs:add"}
    status, answer = await _post(api, body)
    assert status == 422 and answer["field"] == "task", answer
    assert answer["errors"][0]["message"] == "only for kind user"


def test_a_producer_whose_jobs_cannot_be_imported_does_not_start(
    redis_url: str, jobs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POOLLAB_JOBS", "testjobs,no_such_jobs_module")
    get_settings.cache_clear()
    userjobs.registered.cache_clear()
    with pytest.raises(userjobs.UserJobError, match="cannot import 'no_such_jobs_module'"):
        create_app(Settings(broker_url=redis_url))
