"""The steady state of a cell, its ``short`` figure, and the jobs that make it long enough."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from poollab.measure.bench.cell import CellSpec, Measured
from poollab.measure.bench.config import BenchConfig
from poollab.measure.bench.results import Contention, RedisPerJob
from poollab.measure.bench.runner import _longer_jobs
from poollab.measure.bench.steady import jobs_for_steady, short_note, steady_state_s
from poollab.measure.samples import Resources
from poollab.timings import JobTiming, Summary


def test_the_steady_state_runs_from_the_cth_start_to_the_last_start() -> None:
    # c=2: the second job starts at 0.1 (every slot busy); the last one at 2.6
    starts = [0.0, 0.1, 0.6, 1.1, 1.6, 2.1, 2.6]
    assert steady_state_s(starts, 2) == 2.5
    assert steady_state_s(list(reversed(starts)), 2) == 2.5
    # solo: from the first start
    assert steady_state_s(starts, 1) == 2.6
    # more slots than jobs: never at full parallelism
    assert steady_state_s(starts, 100) == 0.0
    assert math.isnan(steady_state_s([], 2))


def test_a_cell_shorter_than_cell_s_says_so_in_figures() -> None:
    assert short_note(0.42, 1.0) == "steady state 0.42 s < cell_s 1 s"
    assert short_note(3.0, 3.0) is None
    # unknown either way: nothing claimed
    assert short_note(math.nan, 1.0) is None and short_note(0.4, math.nan) is None


def test_a_short_cell_grows_by_its_own_rate_and_within_the_bound() -> None:
    # 150 jobs in 0.8 s of which 0.5 s steady: the ramps (0.3 s) stay, the steady part grows
    wanted = jobs_for_steady(150, 0.8, 0.5, cell_s=1.0, max_jobs=20_000)
    assert wanted == math.ceil(150 / 0.8 * 1.3 * 1.2)
    assert wanted is not None and wanted > 150
    assert jobs_for_steady(150, 0.8, 0.5, cell_s=1.0, max_jobs=200) == 200
    # long enough, at the bound already, or nothing measured: no growth
    assert jobs_for_steady(150, 1.5, 1.2, cell_s=1.0, max_jobs=20_000) is None
    assert jobs_for_steady(200, 0.8, 0.5, cell_s=1.0, max_jobs=200) is None
    assert jobs_for_steady(150, 0.0, math.nan, cell_s=1.0, max_jobs=20_000) is None


def measured_cell(starts: list[float], run_s: float, concurrency: int) -> Measured:
    """A cell's measurement with jobs started at ``starts``, each running ``run_s``."""
    timings = [(f"id{i}", "SUCCESS", JobTiming(s, s, s + run_s)) for i, s in enumerate(starts)]
    duration = max(starts) + run_s - min(starts)
    return Measured(
        spec=CellSpec("tuned", "prefork", concurrency, "cpu", "drain", {"n": 1}),
        jobs=len(starts),
        summary=Summary(len(starts), len(starts), 0, duration, len(starts) / duration),
        resources=Resources.empty(),
        publish_per_s=1000.0,
        lost=0,
        early=0,
        window=(min(starts), max(starts) + run_s),
        contention=Contention(1.0, 0.1, 0.8, 0.1),
        redis=RedisPerJob(6.0, 0.0),
        timings=timings,
    )


def test_the_runner_grows_a_sized_cell_until_its_steady_state_lasts_cell_s() -> None:
    config = BenchConfig(pools=("prefork",), workloads=("cpu",), levels={"prefork": (2,)},
                         cell_s=1.0)  # fmt: skip
    # 40 jobs at c=2, one every 10 ms: 0.39 s of steady state in a 0.4 s cell
    short = measured_cell([i * 0.01 for i in range(40)], 0.02, 2)
    assert short.steady_s == pytest.approx(0.38)
    grown = _longer_jobs(config, short)
    assert grown is not None and grown > 100
    # a second long enough, or a fixed --jobs: left as it is (flagged short if it is short)
    assert _longer_jobs(config, measured_cell([i * 0.01 for i in range(150)], 0.02, 2)) is None
    assert _longer_jobs(replace(config, jobs=40), short) is None
