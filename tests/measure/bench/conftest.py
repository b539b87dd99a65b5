"""One small benchmark run on the tests' Redis, shared by the tests that check its output."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from rich.console import Console

from poollab.launcher.redis_server import RedisServer
from poollab.measure.bench.config import BenchConfig
from poollab.measure.bench.lab import WorkerRun
from poollab.measure.bench.results import BenchCell, BenchRun
from poollab.measure.bench.runner import run_bench
from tests.conftest import service_env

# the smallest matrix that still has a process tree (prefork), a thread pool, the solo
# baseline the ceilings come from, CPU and I/O jobs, and both modes
POOLS = ("solo", "prefork", "threads")
WORKLOADS = ("noop", "cpu", "io")
JOBS = 40


def tree_memory(pid: int) -> tuple[float, float, float]:
    """RSS, USS and PSS in MB of a process and its descendants, read with psutil here."""
    root = psutil.Process(pid)
    rss = uss = pss = 0
    for proc in (root, *root.children(recursive=True)):
        info = proc.memory_full_info()
        rss += info.rss
        uss += info.uss
        pss += info.pss
    return rss / 2**20, uss / 2**20, pss / 2**20


@dataclass
class Readings:
    """Memory read independently from the bench, when the consumer is idle."""

    idle: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    after: dict[tuple[str, str, str], tuple[float, float, float]] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)


class ReadingHooks:
    def __init__(self) -> None:
        self.readings = Readings()

    def worker_ready(self, worker: WorkerRun) -> None:
        self.readings.idle[worker.pool] = tree_memory(worker.pid)
        self.readings.pids[worker.pool] = worker.pid

    def cell_done(self, cell: BenchCell, worker: WorkerRun) -> None:
        key = (cell.pool, cell.workload, cell.mode)
        self.readings.after[key] = tree_memory(worker.pid)


@dataclass
class SmallRun:
    results: BenchRun
    out: Path
    readings: Readings
    broker_url: str
    elapsed_s: float


@pytest.fixture(scope="session")
def small_run(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> SmallRun:
    broker_url = redis_server.url + "/4"
    environ = {**os.environ, **service_env(broker_url)}
    out = tmp_path_factory.mktemp("bench")
    config = BenchConfig(
        pools=POOLS,
        workloads=WORKLOADS,
        levels={"solo": (1,), "prefork": (2,), "threads": (8,)},
        profiles=("tuned",),
        jobs=JOBS,
        io_latency_ms=20,
        cpu_n=20_000,
        # a busy machine must not make the tests slower: nothing here compares rates
        retries=0,
        out=out,
    )
    hooks = ReadingHooks()
    began = time.monotonic()
    results = run_bench(config, environ, Console(stderr=True), hooks=hooks, command=["test"])
    return SmallRun(results, out, hooks.readings, broker_url, time.monotonic() - began)
