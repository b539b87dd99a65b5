"""``poollab bench --job``: a callable the lab has never seen, plain and async, measured
through all five consumers by one command each, against ceilings from its own bare loop."""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from poollab.launcher.redis_server import RedisServer
from poollab.measure.bench.cli import add_parser, build_config
from poollab.measure.bench.config import BenchConfig
from poollab.measure.bench.results import load_results
from tests.conftest import service_env
from tests.measure.bench.usermodule import importable_module

POOLLAB = str(Path(sys.executable).parent / "poollab")
POOLS = {"prefork", "threads", "gevent", "solo", "asyncio"}

MODULE = """
import asyncio
import time


def nap(ms):
    time.sleep(ms / 1000)
    return {"slept": ms}


async def anap(ms):
    await asyncio.sleep(ms / 1000)
    return {"slept": ms}
"""


def _config(*argv: str) -> BenchConfig:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return build_config(parser.parse_args(["bench", *argv]))


def test_job_replaces_the_builtin_workloads_unless_workloads_are_given_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = importable_module(tmp_path, monkeypatch, "h2c", MODULE)
    alone = _config("--quick", "--job", f"{module}:nap", "--params", '{"ms": 5}')
    assert alone.workloads == ("nap",)
    assert alone.job_params("nap") == {"ms": 5}
    assert alone.builtin_workloads == () and alone.quick
    both = _config("--job", f"{module}:anap", "--params", '{"ms": 5}', "--workloads", "cpu")
    assert both.workloads == ("cpu", "anap") and both.builtin_workloads == ("cpu",)
    sets = tmp_path / "sets.json"
    sets.write_text(json.dumps([{"ms": 1}, {"ms": 2}, {"ms": 3}]))
    swept = _config("--job", f"{module}:nap", "--params-file", str(sets))
    assert swept.workloads == ("nap#1", "nap#2", "nap#3")
    assert [swept.job_params(w) for w in swept.workloads] == [{"ms": 1}, {"ms": 2}, {"ms": 3}]
    assert _config().user_jobs == ()


@pytest.mark.parametrize(("function", "database"), [("nap", 6), ("anap", 7)])
def test_a_new_callable_is_measured_on_every_consumer_against_its_own_ceiling(
    redis_server: RedisServer, tmp_path: Path, function: str, database: int
) -> None:
    module = f"h2cli_{function}"
    (tmp_path / f"{module}.py").write_text(MODULE)
    out = tmp_path / "results"
    argv = [
        POOLLAB, "bench", "--job", f"{module}:{function}", "--params", '{"ms": 10}',
        "--modes", "drain", "--profiles", "tuned", "--jobs", "20", "--retries", "0",
        "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, **service_env(f"{redis_server.url}/{database}")}
    env.pop("POOLLAB_JOBS", None)
    # run from the directory that holds the module, as a user would
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]

    run = load_results(out / "results.json")
    assert run.config.workloads == (function,)
    (job,) = run.config.user_jobs
    assert job.task_name == f"poollab.user.{module}.{function}"
    assert job.is_async == (function == "anap")

    # the bare loop: a 10 ms sleep waits, it does not compute
    cal = run.references.user[function]
    assert cal.jobs >= 5
    assert 10.0 <= cal.wall_ms < 25.0
    assert cal.cpu_share < 0.5
    assert 0 <= cal.cpu_ms < cal.wall_ms / 2
    assert cal.thread_overlap > 0.5  # sleeping threads overlap
    if job.is_async:
        assert 10.0 <= cal.loop_wall_ms < 25.0

    cells = {c.pool: c for c in run.cells}
    how = {pool: c.how_run or "" for pool, c in cells.items()}
    assert set(cells) == POOLS and len(run.cells) == len(POOLS)
    for pool, cell in cells.items():
        assert cell.workload == function and cell.params == {"ms": 10}
        assert cell.completed == 20 and cell.failed == 0, pool
        assert math.isfinite(cell.ceiling_per_s) and cell.bound != "unknown", pool
        assert 0 < cell.efficiency <= 1.1, (pool, cell.efficiency, cell.ceiling_per_s)
        assert cell.how_run, pool
    # slots = c / wall per call: solo's ceiling is ~1 / 10 ms, threads' 16 times that
    wall_s = (cal.loop_wall_ms if job.is_async else cal.wall_ms) / 1000
    assert cells["solo"].bound == "slots"
    assert cells["solo"].ceiling_per_s == pytest.approx(1 / (cal.wall_ms / 1000), rel=0.01)
    assert 40 < cells["solo"].ceiling_per_s <= 100.0
    threads = cells["threads"]
    slots = threads.concurrency / (cal.wall_ms / 1000)
    assert threads.ceiling_per_s == pytest.approx(slots, rel=0.01)
    if job.is_async:
        assert "asyncio.run" in how["solo"]
        assert "event loop" in how["asyncio"]
        asyncio_slots = cells["asyncio"].concurrency / wall_s
    else:
        assert "asyncio.run" not in how["solo"]
        assert "executor" in how["asyncio"]
        workers = min(cells["asyncio"].concurrency, run.references.asyncio_cpu_workers)
        asyncio_slots = workers / wall_s
    assert cells["asyncio"].ceiling_per_s <= asyncio_slots * 1.01

    # the report says it too
    report = (out / "report.md").read_text()
    assert f"`{module}:{function}(ms=10)`" in report
    assert how["gevent"] in report
    raw = json.loads((out / "results.json").read_text())
    assert raw["references"]["user"][function]["cpu_share"] == cal.cpu_share
