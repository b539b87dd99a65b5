"""``--job``'s checks before anything starts, the consumers' environment, and the wording of
how each consumer ran the callable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from poollab.measure.bench.config import ConfigError, UserWorkload
from poollab.measure.bench.userjob import (
    how_run,
    load_user_workloads,
    read_param_sets,
    worker_environ,
)
from tests.measure.bench.usermodule import importable_module

POOLLAB = str(Path(sys.executable).parent / "poollab")

MODULE = """
import asyncio

def resize(size, quality=80):
    return size * quality

async def fetch(url: str, *, tries: int = 1) -> int:
    await asyncio.sleep(0)
    return tries

cpu = resize
NOT_CALLABLE = 3
"""


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    return importable_module(tmp_path, monkeypatch, "h2", MODULE)


def test_one_workload_per_parameter_set_named_after_the_function(user_module: str) -> None:
    (one,) = load_user_workloads(f"{user_module}:resize", [{"size": 3}])
    assert one == UserWorkload(
        name="resize",
        spec=f"{user_module}:resize",
        module=user_module,
        task_name=f"poollab.user.{user_module}.resize",
        is_async=False,
        params={"size": 3},
    )
    sets = load_user_workloads(f"{user_module}:fetch", [{"url": "a"}, {"url": "b", "tries": 2}])
    assert [w.name for w in sets] == ["fetch#1", "fetch#2"]
    assert all(w.is_async for w in sets)
    assert [w.params for w in sets] == [{"url": "a"}, {"url": "b", "tries": 2}]
    # a function named like a built-in workload keeps its module, not to be mistaken for it
    (named,) = load_user_workloads(f"{user_module}:cpu", [{"size": 1}])
    assert named.name == f"{user_module}.cpu"


@pytest.mark.parametrize(
    ("spec", "params", "says"),
    [
        ("no_such_module_h2:f", {}, "cannot import 'no_such_module_h2'"),
        ("{m}:missing", {}, "has no 'missing'"),
        ("{m}:NOT_CALLABLE", {}, "not a callable"),
        ("{m}", {}, "is not MODULE:FUNCTION"),
        ("{m}:resize", {}, "missing a required argument: 'size'"),
        ("{m}:resize", {"size": 1, "colour": 2}, "unexpected keyword argument 'colour'"),
        ("{m}:fetch", {"url": "x", "retries": 1}, "unexpected keyword argument 'retries'"),
    ],
)
def test_a_bad_job_or_params_is_a_config_error_naming_it(
    user_module: str, spec: str, params: dict[str, int], says: str
) -> None:
    with pytest.raises(ConfigError, match=r"^--") as caught:
        load_user_workloads(spec.format(m=user_module), [params])
    assert says in str(caught.value)


def test_params_are_one_json_object_or_a_file_with_a_list_of_them(tmp_path: Path) -> None:
    assert read_param_sets(None, None) == [{}]
    assert read_param_sets('{"size": 1024}', None) == [{"size": 1024}]
    listed = tmp_path / "sets.json"
    listed.write_text(json.dumps([{"size": 1}, {"size": 2}]))
    assert read_param_sets(None, listed) == [{"size": 1}, {"size": 2}]
    for text, says in (("[1]", "must be a JSON object, got a list"), ("{", "not JSON")):
        with pytest.raises(ConfigError, match=f"--params: {says}"):
            read_param_sets(text, None)
    for content, says in (
        ("{}", "non-empty JSON list"),
        ("[]", "non-empty"),
        ("[{}, 3]", "item 1"),
    ):
        listed.write_text(content)
        with pytest.raises(ConfigError, match=says):
            read_param_sets(None, listed)
    with pytest.raises(ConfigError, match="cannot read"):
        read_param_sets(None, tmp_path / "absent.json")
    with pytest.raises(ConfigError, match="not both"):
        read_param_sets("{}", listed)


def test_consumers_get_the_module_in_poollab_jobs_and_the_cwd_on_their_path() -> None:
    job = UserWorkload("f", "pkg.mod:f", "pkg.mod", "poollab.user.pkg.mod.f", False, {})
    other = UserWorkload("g#1", "other:g", "other", "poollab.user.other.g", True, {})
    env = worker_environ({"PYTHONPATH": "/somewhere", "X": "1"}, (job, other, job), cwd="/here")
    assert env["POOLLAB_JOBS"] == "pkg.mod,other"
    assert env["PYTHONPATH"].split(os.pathsep) == ["/here", "/somewhere"]
    assert env["X"] == "1"
    # without --job the environment is the bench's own
    assert worker_environ({"X": "1"}, (), cwd="/here") == {"X": "1"}


def test_how_each_consumer_ran_a_plain_and_an_async_callable() -> None:
    plain = UserWorkload("f", "m:f", "m", "poollab.user.m.f", False, {})
    coro = UserWorkload("g", "m:g", "m", "poollab.user.m.g", True, {})
    assert how_run(plain, "prefork", []) == "called in a prefork child process"
    assert "asyncio.run" in how_run(coro, "solo", []) and "only thread" in how_run(coro, "solo", [])
    assert "native thread of gevent's hub threadpool" in how_run(coro, "gevent", [])
    assert "greenlet (it yields" in how_run(plain, "gevent", [])
    assert "asyncio.run" not in how_run(plain, "threads", [])
    assert how_run(coro, "asyncio", ["poollab", "consume"]).startswith("awaited on the consumer's")
    assert "process executor" in how_run(plain, "asyncio", ["poollab", "consume"])
    argv = ["poollab", "consume", "--cpu-executor", "thread"]
    assert "thread executor" in how_run(plain, "asyncio", argv)


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--job", "h2_absent_module:f"], "--job: cannot import 'h2_absent_module'"),
        (["--job", "{m}:resize", "--params", "[1, 2]"], "--params: must be a JSON object"),
        (["--job", "{m}:resize", "--params", '{"sise": 1}'], "does not accept"),
        (["--params", "{}"], "go with --job"),
    ],
)
def test_the_command_refuses_a_bad_job_before_starting_anything(
    user_module: str, tmp_path: Path, extra: list[str], says: str
) -> None:
    out = tmp_path / "results"
    argv = [POOLLAB, "bench", "--out", str(out), *(a.replace("{m}", user_module) for a in extra)]
    # an unreachable broker: had the command started a lab, it would say so, not this
    env = {**os.environ, "POOLLAB_BROKER_URL": "redis://127.0.0.1:9/0"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()
