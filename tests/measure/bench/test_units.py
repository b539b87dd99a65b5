"""The bench's pure parts: options, ceilings, repeats, sizing."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from poollab.measure.bench.ceilings import References, ceiling, efficiency
from poollab.measure.bench.cli import add_parser, build_config
from poollab.measure.bench.config import (
    WORKLOADS,
    BenchConfig,
    ConfigError,
    parse_levels,
    parse_list,
)
from poollab.measure.bench.profiles import PROFILES, worker_service
from poollab.measure.bench.results import BenchRun, load_results, merge_repeats
from poollab.measure.bench.sizing import cell_jobs
from poollab.settings import ALL_POOLS, Settings
from tests.measure.bench.factory import make_cell, make_run

POOLLAB = str(Path(sys.executable).parent / "poollab")


def test_concurrency_levels_for_every_pool_or_one() -> None:
    settings = Settings()
    pools = ("prefork", "gevent", "solo")
    assert parse_levels(None, pools, settings) == {"prefork": (2,), "gevent": (100,), "solo": (1,)}
    assert parse_levels("4,1", pools, settings) == {
        "prefork": (1, 4), "gevent": (1, 4), "solo": (1,),
    }  # fmt: skip
    assert parse_levels("gevent=100:500,prefork=2", pools, settings) == {
        "prefork": (2,), "gevent": (100, 500), "solo": (1,),
    }  # fmt: skip
    for bad in ("eventlet=3", "x", "0", "gevent=2:y"):
        with pytest.raises(ConfigError):
            parse_levels(bad, pools, settings)
    with pytest.raises(ConfigError, match="unknown nope"):
        parse_list("noop,nope", ("noop",), "--workloads")


REFS = References(
    cores=2, solo_noop_per_s=400.0, solo_cpu_per_s=40.0, cpu_n=100_000, mixed_cpu_n=25_000,
    io_latency_ms=50, source="test",
)  # fmt: skip


def test_ceilings_take_the_lower_bound_and_say_which() -> None:
    assert (ceiling(REFS, "cpu", 1).per_s, ceiling(REFS, "cpu", 1).bound) == (40.0, "concurrency")
    assert (ceiling(REFS, "cpu", 16).per_s, ceiling(REFS, "cpu", 16).bound) == (80.0, "cpu")
    assert (ceiling(REFS, "io", 10).per_s, ceiling(REFS, "io", 10).bound) == (200.0, "io")
    # 100 / 50 ms = 2000/s, but 2 cores × 400/s of path is 800/s
    assert (ceiling(REFS, "sleep", 100).per_s, ceiling(REFS, "sleep", 100).bound) == (800.0, "cpu")
    mixed = ceiling(REFS, "mixed", 1)
    cpu_s = 1 / 400 + (1 / 40 - 1 / 400) * 0.25
    assert mixed.per_s == pytest.approx(1 / (0.05 + cpu_s), rel=1e-3) and mixed.bound == "io"
    assert efficiency(40.0, 80.0) == 0.5
    assert math.isnan(efficiency(1.0, math.nan))
    unknown = References(2, 0.0, 0.0, 1, 1, 50, "none")
    assert ceiling(unknown, "noop", 1).bound == "unknown"


def test_the_median_repeat_is_kept_and_the_others_listed() -> None:
    records = [
        make_cell(mode="live", repeat=i, throughput_per_s=rate, raw=f"r{i}")
        for i, rate in enumerate((10.0, 30.0, 20.0))
    ]
    (cell,) = merge_repeats(records)
    assert cell.repeat == 2 and cell.throughput_per_s == 20.0
    assert cell.repeats is not None
    assert [r.throughput_per_s for r in cell.repeats] == [10.0, 30.0, 20.0]
    assert cell.throughput_spread == 1.0
    # the records themselves are left as they were
    assert all(r.repeats is None for r in records)


def test_a_run_reads_back_exactly_with_its_unmeasured_figures() -> None:
    repeated = merge_repeats(
        [make_cell(repeat=i, throughput_per_s=0.0, raw=f"r{i}") for i in range(2)]
    )
    run = make_run([*repeated, make_cell(mode="live", latency_ms={})])
    data = run.to_json()
    text = json.dumps(data, allow_nan=False)
    drain, live = data["cells"]
    # NaN is null on disk; optional parts appear only when set
    assert drain["pss_mb"] == {"idle": None, "peak": None, "mean": None}
    assert drain["throughput_spread"] is None and len(drain["repeats"]) == 2
    assert "repeats" not in live and "throughput_spread" not in live
    assert live["latency_ms"] == {} and live["ceiling_per_s"] is None
    assert list(data) == [
        "format", "started_at", "finished_at", "duration_s", "command", "machine", "config",
        "profiles", "references", "publisher", "cells", "interrupted",
    ]  # fmt: skip
    assert list(data["config"])[-3:] == ["params", "broker", "cpu_job_ms_in_process"]
    again = BenchRun.from_json(json.loads(text))
    assert again.to_json() == data
    assert math.isnan(again.cells[0].pss_mb.peak) and again.cells[0].throughput_spread is not None
    assert again.config.levels == {"solo": (1,)} and again.config.out == Path("out")
    assert again.profiles["tuned"] == run.profiles["tuned"]


def test_a_results_file_of_another_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"format": "poollab-bench/0", "cells": []}))
    with pytest.raises(ValueError, match="not a poollab-bench/1 file"):
        load_results(path)
    data = make_run([make_cell()]).to_json()
    del data["cells"][0]["pool"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="'pool' is missing"):
        load_results(path)


def test_cells_are_sized_to_keep_every_slot_busy_within_reason() -> None:
    levels = {"gevent": (100,)}
    config = BenchConfig(pools=("gevent",), workloads=("io",), levels=levels, cell_s=2.0)
    assert cell_jobs(config, 100, rate=500.0) == 1000
    # 2 × c = 200 jobs, unless that would take more than twice the target
    assert cell_jobs(config, 100, rate=30.0) == 120
    assert cell_jobs(config, 1, rate=5.0) == config.min_jobs
    fixed = BenchConfig(pools=("gevent",), workloads=("io",), levels={"gevent": (100,)}, jobs=7)
    assert cell_jobs(fixed, 100, rate=500.0) == 7


def test_profiles_only_add_to_the_lab_command() -> None:
    settings = Settings()
    for profile in PROFILES.values():
        service = worker_service("gevent", 100, profile, settings, "gevent@h")
        argv = list(service.argv)
        assert argv[:4] == ["celery", "-A", "poollab.worker.app", "worker"]
        assert argv[4:10] == ["-P", "gevent", "-c", "100", "-Q", "gevent"]
        # the hook layer comes with the worker app: nothing is added to load it
        assert "-I" not in argv
        assert ("-E" in argv) == profile.task_events
    tuned = worker_service("prefork", 2, PROFILES["tuned"], settings, "prefork@h").argv
    assert tuned[-2:] == ("worker_prefetch_multiplier=1", "result_backend_thread_safe=(bool)true")
    assert "fair" in tuned
    consumer = worker_service("asyncio", 50, PROFILES["defaults"], settings, "asyncio@h")
    assert consumer.argv[:4] == ("poollab", "consume", "-c", "50")
    assert "asyncio" in consumer.argv and consumer.env["POOLLAB_TASK_EVENTS"] == "false"


def test_bad_options_are_refused_before_anything_starts(tmp_path: Path) -> None:
    for args, message in (
        (["--pools", "prefork,nope"], "--pools: unknown nope"),
        (["--workloads", "sleepy"], "--workloads: unknown sleepy"),
        (["--cell-s", "0"], "--cell-s: must be between"),
        (["--concurrency", "gevent=0"], "levels go from 1 to 10000"),
        (["--report-from", str(tmp_path / "none.json")], "none.json"),
    ):
        result = subprocess.run(
            [POOLLAB, "bench", "--out", str(tmp_path / "out"), *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert not (tmp_path / "out").exists()


def _bench_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(["bench", *argv])


def test_quick_fills_in_only_the_options_left_out() -> None:
    quick = build_config(_bench_args("--quick"))
    assert (quick.cell_s, quick.retries, quick.profiles) == (1.0, 0, ("tuned",))
    assert quick.workloads == ("noop", "cpu", "io")
    # a value the user gave stays, even when it equals the full run's default
    given = build_config(
        _bench_args("--quick", "--cell-s", "3", "--retries", "1", "--workloads", "sleep")
    )
    assert (given.cell_s, given.retries, given.workloads) == (3.0, 1, ("sleep",))
    assert given.profiles == ("tuned",)
    full = build_config(_bench_args())
    assert (full.cell_s, full.retries, full.profiles) == (3.0, 1, ("defaults", "tuned"))
    assert full.workloads == WORKLOADS and full.pools == ALL_POOLS
