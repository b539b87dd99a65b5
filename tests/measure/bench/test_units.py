"""The bench's pure parts: options, ceilings, repeats, sizing."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from poollab.measure.bench.ceilings import (
    StartGaps,
    calibrate,
    calibrate_async,
    ceiling,
    diagnose,
    efficiency,
    is_stall,
    start_gaps,
)
from poollab.measure.bench.cli import add_parser, build_config
from poollab.measure.bench.config import (
    WORKLOADS,
    BenchConfig,
    ConfigError,
    parse_levels,
    parse_list,
)
from poollab.measure.bench.profiles import PROFILES, worker_service
from poollab.measure.bench.report.verdict import workload_verdict
from poollab.measure.bench.results import BenchRun, apply_ceilings, load_results, merge_repeats
from poollab.measure.bench.sizing import cell_jobs
from poollab.settings import ALL_POOLS, Settings
from tests.measure.bench.factory import REFS, make_cell, make_run

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


def test_ceilings_are_the_least_of_the_physical_bounds_and_say_which() -> None:
    def at(pool: str, workload: str, c: int, offered: float = math.nan) -> tuple[float, str]:
        found = ceiling(REFS, pool, workload, c, offered)
        return found.per_s, found.bound

    # a 10 ms body: one core on solo and threads, min(c, 2 cores) on prefork
    assert at("solo", "cpu", 1) == (100.0, "cores")
    assert at("threads", "cpu", 16) == (100.0, "cores")
    assert at("prefork", "cpu", 16) == (200.0, "cores")
    assert at("prefork", "cpu", 1) == (100.0, "cores")
    # the asyncio consumer: its CPU executor for cpu jobs, its one loop for the rest
    assert at("asyncio", "cpu", 100) == (200.0, "cores")
    # ... with its own async body where timed (its aiohttp client: 0.1 ms)
    assert at("asyncio", "io", 1000) == (10000.0, "cores")
    assert at("asyncio", "noop", 1) == (1 / 0.000001, "cores")
    # io: c / (50 ms + 0.2 ms) until one core's 1 / 0.2 ms
    io = ceiling(REFS, "gevent", "io", 10)
    assert io.per_s == pytest.approx(10 / 0.0502, rel=1e-3) and io.bound == "slots"
    mixed = ceiling(REFS, "threads", "mixed", 1)
    assert mixed.per_s == pytest.approx(1 / (0.05 + 0.0027), rel=1e-3) and mixed.bound == "slots"
    # live: never above the rate the jobs were offered at
    assert at("gevent", "io", 10, offered=50.0) == (50.0, "offered")
    # every selected workload has a body; one without is unknown, never another's bound
    unknown = ceiling(REFS, "solo", "sleep", 1)
    assert unknown.bound == "unknown" and math.isnan(unknown.per_s)
    assert efficiency(40.0, 80.0) == 0.5
    assert math.isnan(efficiency(1.0, math.nan))


def test_a_body_is_timed_in_a_bare_loop_for_every_selected_workload() -> None:
    config = BenchConfig(pools=("solo",), workloads=("noop", "cpu"), levels={"solo": (1,)})
    # no upstream needed for these two; each body gets its own figure
    bodies = calibrate(("cpu", "noop"), config.job_params, "http://127.0.0.1:9", seconds=0.1)
    assert set(bodies) == {"cpu", "noop"}
    assert 0 < bodies["noop"].cpu_ms < bodies["cpu"].cpu_ms
    assert bodies["noop"].jobs > bodies["cpu"].jobs >= 1
    assert bodies["cpu"].cpu_ms <= bodies["cpu"].cpu_ms_mean
    async_bodies = calibrate_async(("noop",), config.job_params, "http://127.0.0.1:9", 0.1)
    assert 0 < async_bodies["noop"].cpu_ms < bodies["cpu"].cpu_ms


def test_a_stall_of_2_s_gaps_between_starts_is_flagged_and_a_healthy_cell_is_not() -> None:
    # a gevent cell at -c 2 on 20 ms io jobs: pairs of jobs starting ~2 s apart
    stalled = []
    t = 1000.0
    for i in range(10):
        stalled += [(t, t + 0.021), (t + 0.001, t + 0.022)]
        t += 2.0 + 0.05 * (i % 3)
    gaps = start_gaps(stalled)
    assert 1900 < gaps.p50_ms < 2200 and gaps.near_2s == 1.0 and gaps.idle > 0.9
    flag = diagnose(
        pool="gevent", eff=0.025, bound="slots", gaps=gaps, run_p50_ms=21.0,
        consumer_cpu_ms_per_job=5.0, body_cpu_ms=0.2,
    )  # fmt: skip
    assert flag is not None and flag.cause == "stall" and flag.bound == "slots"
    assert "2 s" in flag.detail and "gevent" in flag.detail
    # healthy: starts every ~10 ms while each job runs 20 ms at c=2
    healthy = start_gaps([(1000.0 + i * 0.01, 1000.02 + i * 0.01) for i in range(40)])
    assert math.isnan(healthy.p50_ms) and healthy.idle == 0.0
    assert not is_stall(healthy, 20.0)
    healthy_flag = diagnose(
        pool="gevent", eff=0.9, bound="slots", gaps=healthy, run_p50_ms=20.0,
        consumer_cpu_ms_per_job=5.0, body_cpu_ms=0.2,
    )  # fmt: skip
    assert healthy_flag is None
    # below 25% without a stall: the per-job path, when the consumer's CPU per job says so
    slow = diagnose(
        pool="solo", eff=0.01, bound="cores", gaps=healthy, run_p50_ms=0.1,
        consumer_cpu_ms_per_job=2.0, body_cpu_ms=0.001,
    )  # fmt: skip
    assert slow is not None and slow.cause == "overhead"
    # no stall, a path no costlier than the body: other processes sharing the machine
    shared = diagnose(
        pool="prefork", eff=0.15, bound="cores", gaps=healthy, run_p50_ms=10.0,
        consumer_cpu_ms_per_job=12.0, body_cpu_ms=9.0, other_cores=1.6, busy_cores=0.35,
    )  # fmt: skip
    assert shared is not None and shared.cause == "contention" and "1.60" in shared.detail
    # long jobs started seconds apart are not a stall: the gap is their run time
    long_jobs = start_gaps([(1000.0 + i * 2.0, 1001.99 + i * 2.0) for i in range(10)])
    assert not is_stall(long_jobs, 1990.0)
    # bursts: pairs of short jobs a few ms apart, the pairs 2 s apart (gevent -c 2, noop)
    bursts = []
    for i in range(10):
        t = 1000.0 + 2.0 * i
        bursts += [(t, t + 0.0001), (t + 0.005, t + 0.0051)]
    burst_gaps = start_gaps(bursts)
    assert burst_gaps.p50_ms < 1000 and is_stall(burst_gaps, 0.1)
    # staggered slots, each taking its next job ~2 s late: idle, seconds apart, a stall too
    staggered = start_gaps([(1000.0 + i, 1000.02 + i) for i in range(20)])
    assert is_stall(staggered, 20.0)


def test_apply_ceilings_flags_marks_and_relates_to_solo() -> None:
    solo = make_cell(pool="solo", workload="io", throughput_per_s=18.0, params={"ms": 50})
    gevent = make_cell(
        pool="gevent", workload="io", concurrency=2, throughput_per_s=1.0, params={"ms": 50},
        run_ms={"p50": 51.0, "p95": 52.0, "p99": 53.0}, cpu_cores=0.01,
        start_gaps=StartGaps(p50_ms=2000.0, near_2s=0.9, idle=0.95),
    )  # fmt: skip
    run = make_run([solo, gevent])
    apply_ceilings(run.cells, REFS)
    assert gevent.bound == "slots" and gevent.ceiling_per_s == pytest.approx(2 / 0.0502, rel=1e-3)
    assert gevent.x_solo == pytest.approx(1 / 18, rel=1e-2)
    assert gevent.pathology is not None and gevent.pathology.cause == "stall"
    assert solo.pathology is None and solo.efficiency == pytest.approx(18 * 0.0502, rel=1e-3)
    lines = workload_verdict(run, "io")
    assert any("⚠" in line and "gevent c=2" in line and "2 s" in line for line in lines)
    again = BenchRun.from_json(json.loads(json.dumps(run.to_json(), allow_nan=False)))
    assert again.cells[1].pathology == gevent.pathology
    assert again.references == run.references


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
    assert tuned[-2:] == ("--", "result_backend_thread_safe=(bool)true")
    assert "fair" in tuned
    # the multiplier goes as the worker's own option: after `--` its default overrode it
    assert all("prefetch" not in arg for arg in tuned[tuned.index("--") :])

    def multiplier(pool: str, profile: str) -> str:
        argv = worker_service(pool, 2, PROFILES[profile], settings, f"{pool}@h").argv
        # click keeps the last of a repeated option: the pool's, after the profile's
        last = len(argv) - 1 - argv[::-1].index("--prefetch-multiplier")
        return argv[last + 1]

    assert multiplier("prefork", "tuned") == "1" and multiplier("gevent", "tuned") == "2"
    assert multiplier("gevent", "defaults") == "4" == multiplier("threads", "shared-backend")
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


def test_timings_of_a_body_merge_to_their_least() -> None:
    """A body timed again on a quieter moment lowers its cost; a slower timing never raises it."""
    from dataclasses import replace

    from poollab.measure.bench.ceilings import BodyCalibration

    slower = replace(
        REFS,
        bodies={**REFS.bodies, "cpu": BodyCalibration({"n": 100_000}, 20, 16.7, 17.0, 17.1)},
        async_bodies={"io": BodyCalibration({"ms": 50}, 6, 0.05, 0.06, 50.2)},
    )
    merged = REFS.merged(slower)
    assert merged.bodies["cpu"].cpu_ms == 10.0 and merged.bodies["cpu"].jobs == 50
    assert merged.async_bodies["io"].cpu_ms == 0.05
    assert merged.bodies["noop"].cpu_ms == REFS.bodies["noop"].cpu_ms
    assert slower.merged(REFS).body_cpu_s("cpu") == REFS.body_cpu_s("cpu")
