"""A --job callable's bare loop, in a process of its own: its CPU, wall and threads' overlap."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pytest

from poollab.measure.bench.config import UserWorkload
from poollab.measure.bench.userjob import ProbeError, calibrate_user
from poollab.measure.bench.userprobe import probe
from tests.measure.bench.usermodule import importable_module

MODULE = """
import asyncio, time

def nap(ms):
    time.sleep(ms / 1000)
    return ms

async def anap(ms):
    await asyncio.sleep(ms / 1000)
    return ms

def spin(n):
    x = 0
    for i in range(n):
        x += i * i
    return x

def raw(n):
    return b"x" * n

def fails(n):
    raise RuntimeError(f"no {n}")
"""


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    return importable_module(tmp_path, monkeypatch, "h2p", MODULE)


def test_a_sleeping_job_waits_and_its_calls_overlap_on_threads(module: str) -> None:
    found = probe(f"{module}:nap", {"ms": 10}, threads=2, seconds=0.2)
    assert not found.is_async and found.params == {"ms": 10}
    # a sleep of 10 ms never takes less, and a busy machine adds little to its least
    assert 10.0 <= found.wall_ms < 20.0
    assert found.wall_ms <= found.wall_ms_mean
    assert found.cpu_share < 0.2
    assert 0 <= found.cpu_ms < 2.0
    assert found.jobs >= 5
    assert found.thread_speedup > 1.5 and found.thread_overlap > 0.5
    assert math.isnan(found.loop_wall_ms)


def test_a_pure_python_job_holds_the_cpu_and_the_gil(module: str) -> None:
    found = probe(f"{module}:spin", {"n": 20_000}, threads=2, seconds=0.2)
    # far above a sleeping job's ~0.005, even when other work leaves it a fifth of a core
    assert found.cpu_share > 0.1
    assert found.cpu_ms <= found.wall_ms * 1.05
    # all of it on the calling thread
    assert found.thread_cpu_ms >= found.cpu_ms * 0.9
    # two threads cannot run it faster than one (the GIL): well short of 2x
    assert found.thread_speedup < 1.5 and found.thread_overlap < 0.5


def test_an_async_job_is_timed_through_asyncio_run_and_on_one_loop(module: str) -> None:
    found = probe(f"{module}:anap", {"ms": 10}, threads=2, seconds=0.2)
    assert found.is_async
    assert found.wall_ms >= 10.0 and found.loop_wall_ms >= 10.0
    assert found.cpu_share < 0.3
    assert found.loop_cpu_ms >= 0


def test_a_failing_or_unstorable_job_stops_the_bench_with_its_message(module: str) -> None:
    def job(function: str) -> UserWorkload:
        return UserWorkload(
            function, f"{module}:{function}", module, f"poollab.user.{module}.{function}",
            False, {"n": 3},
        )  # fmt: skip

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with pytest.raises(ProbeError, match="RuntimeError: no 3"):
        calibrate_user((job("fails"),), 2, env)
    with pytest.raises(ProbeError, match="bytes, which JSON cannot encode"):
        calibrate_user((job("raw"),), 2, env)
    found = calibrate_user((job("spin"),), 2, env)
    assert found["spin"].jobs >= 1 and found["spin"].threads == 2
