"""Made-up cells and runs for the tests that need results without running a bench."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from poollab.measure.bench.ceilings import BodyCalibration, References
from poollab.measure.bench.config import BenchConfig, RunConfig
from poollab.measure.bench.machine import Machine
from poollab.measure.bench.profiles import PROFILES
from poollab.measure.bench.results import (
    BenchCell,
    BenchRun,
    ConsumerCommand,
    Contention,
    MemoryMb,
    RedisPerJob,
    publisher_rates,
)

NAN = math.nan

# made-up bodies: a noop of 1 µs, a cpu job of 10 ms, an io job of 0.2 ms of CPU
REFS = References(
    cores=2,
    asyncio_cpu_workers=2,
    io_latency_ms=50,
    bodies={
        "noop": BodyCalibration({}, 1000, 0.001, 0.0012, 0.0015),
        "cpu": BodyCalibration({"n": 100_000}, 30, 10.0, 10.5, 10.6),
        "io": BodyCalibration({"ms": 50}, 6, 0.2, 0.25, 51.0),
        "mixed": BodyCalibration({"n": 25_000, "ms": 50}, 6, 2.7, 2.8, 53.0),
    },
    async_bodies={"io": BodyCalibration({"ms": 50}, 6, 0.1, 0.12, 50.5)},
    method="test",
)


def make_cell(**changes: Any) -> BenchCell:
    cell = BenchCell(
        pool="solo", workload="noop", concurrency=1, mode="drain", profile="tuned", repeat=0,
        params={}, jobs=10, completed=10, failed=0, lost=0, early=0, duration_s=1.0,
        throughput_per_s=10.0,
        latency_ms={"p50": 1.0, "p95": 2.0, "p99": 3.0, "max": 4.0},
        queue_wait_ms={"p50": 0.5, "p95": 0.6, "p99": 0.7},
        run_ms={"p50": 0.1, "p95": 0.2, "p99": 0.3},
        rss_mb=MemoryMb(40.0, 42.0, 41.0), uss_mb=MemoryMb(30.0, 32.0, 31.0),
        # a tree whose PSS could not be read: NaN in code, null on disk
        pss_mb=MemoryMb(NAN, NAN, NAN),
        uss_mb_per_slot=32.0, cpu_cores=0.9, publish_per_s=500.0, pids=1, procs=1, samples=4,
        window=(1000.0, 1001.0), contention=Contention(1.0, 0.05, 0.9, 0.05),
        redis=RedisPerJob(commands_per_job=6.0, connections_per_job=0.0),
        command=ConsumerCommand(["celery", "worker"], {"POOLLAB_TASK_EVENTS": "false"}),
        raw="raw/x.jsonl",
    )  # fmt: skip
    return replace(cell, **changes)


def make_run(cells: list[BenchCell]) -> BenchRun:
    config = BenchConfig(
        pools=("solo",), workloads=("noop",), levels={"solo": (1,)}, out=Path("out")
    )
    return BenchRun(
        started_at="2026-01-01T00:00:00+00:00",
        finished_at="2026-01-01T00:01:00+00:00",
        duration_s=60.0,
        command=["poollab", "bench"],
        machine=Machine(
            cores=2,
            logical_cpus=2,
            cpu_model="test",
            memory_mb=4096,
            os="Linux",
            python="3.11.9",
            python_implementation="CPython",
            libraries={"celery": "5.5"},
            redis_server="7.2",
            load_average_at_start=[0.1, 0.2, 0.3],
        ),
        config=RunConfig.of(config, "embedded", 20.0),
        profiles={"tuned": PROFILES["tuned"]},
        references=REFS,
        publisher=publisher_rates(cells),
        cells=cells,
    )
