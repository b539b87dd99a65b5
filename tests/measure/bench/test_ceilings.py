"""The ceilings of --job workloads: from the callable's own bare-loop figures."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest

from poollab.measure.bench.ceilings import References, UserCalibration, ceiling, threads_cores
from tests.measure.bench.factory import REFS

NAN = math.nan


def calibration(**changes: Any) -> UserCalibration:
    # a job that sleeps 10 ms on 0.1 ms of CPU, whose calls overlap fully on threads
    base = UserCalibration(
        params={"ms": 10}, is_async=False, jobs=30, cpu_ms=0.1, cpu_ms_mean=0.12,
        thread_cpu_ms=0.1, wall_ms=10.0, wall_ms_mean=10.2, cpu_share=0.012, threads=2,
        thread_speedup=2.0, thread_overlap=1.0,
    )  # fmt: skip
    return replace(base, **changes)


def refs_with(**jobs: UserCalibration) -> References:
    return replace(REFS, user=jobs)


def at(cal: UserCalibration, pool: str, c: int) -> tuple[float, str]:
    found = ceiling(refs_with(job=cal), pool, "job", c)
    return found.per_s, found.bound


def test_a_waiting_job_is_bound_by_its_slots_over_its_wall_time() -> None:
    nap = calibration()
    assert at(nap, "solo", 1) == (100.0, "slots")
    assert at(nap, "threads", 16) == (1600.0, "slots")
    assert at(nap, "gevent", 100) == (10000.0, "cores")  # 1 core / 0.1 ms first
    assert at(nap, "prefork", 2) == (200.0, "slots")
    # a plain callable on the asyncio consumer: its process executor's 2 workers are its slots
    assert at(nap, "asyncio", 100) == (200.0, "slots")


def test_a_gil_holding_job_gets_one_core_on_threads_and_min_c_cores_on_processes() -> None:
    spin = calibration(cpu_ms=5.0, thread_cpu_ms=5.0, wall_ms=5.0, thread_overlap=0.0)
    assert at(spin, "threads", 16) == (200.0, "cores")
    assert at(spin, "solo", 1) == (200.0, "cores")
    assert at(spin, "prefork", 1) == (200.0, "cores")
    assert at(spin, "prefork", 4) == (400.0, "cores")  # 2 cores
    assert at(spin, "asyncio", 100) == (400.0, "cores")  # process executor, 2 workers


def test_gil_releasing_work_spreads_on_threads_as_far_as_they_overlapped() -> None:
    digest = calibration(cpu_ms=5.0, thread_cpu_ms=5.0, wall_ms=5.0, thread_overlap=1.0)
    assert at(digest, "threads", 16) == (400.0, "cores")
    assert at(digest, "gevent", 100) == (200.0, "cores")  # one thread, whatever C does
    half = replace(digest, thread_overlap=0.5)
    assert at(half, "threads", 16) == (300.0, "cores")
    assert threads_cores(2, NAN) == 2  # overlap not measured: the upper bound
    assert threads_cores(8, 0.0) == 1


def test_cpu_in_children_spreads_over_every_core_even_from_one_thread() -> None:
    # the call waits on a child process doing 4 ms of CPU; its own thread uses 0.1 ms
    child = calibration(cpu_ms=4.1, thread_cpu_ms=0.1, wall_ms=4.5)
    per_s, bound = at(child, "gevent", 100)
    assert bound == "cores" and per_s == pytest.approx(2 / 0.0041, rel=1e-3)


def test_an_async_callable_on_the_asyncio_consumer_uses_its_loop_figures() -> None:
    coro = calibration(is_async=True, cpu_ms=0.3, wall_ms=10.4, loop_cpu_ms=0.05, loop_wall_ms=10.1)
    per_s, bound = at(coro, "asyncio", 100)
    assert bound == "slots" and per_s == pytest.approx(100 / 0.0101, rel=1e-3)
    # the Celery pools run it through asyncio.run per job: those figures
    assert at(coro, "solo", 1)[0] == pytest.approx(1 / 0.0104, rel=1e-3)
    # gevent runs each asyncio.run in a native thread of its hub's pool: threads' bounds
    spin = replace(coro, cpu_ms=5.0, thread_cpu_ms=5.0, wall_ms=5.0, thread_overlap=0.0)
    assert at(spin, "gevent", 100) == (200.0, "cores")
    assert at(replace(spin, thread_overlap=1.0), "gevent", 100) == (400.0, "cores")
    # ... at most 100 of them: c=500 has 100 slots
    light = replace(coro, cpu_ms=0.01, thread_cpu_ms=0.01)
    assert at(light, "gevent", 500)[0] == pytest.approx(100 / 0.0104, rel=1e-3)


def test_no_figure_no_ceiling() -> None:
    per_s, bound = at(calibration(wall_ms=NAN), "solo", 1)
    assert math.isnan(per_s) and bound == "unknown"


def test_timings_merge_to_the_least_cost_and_the_most_overlap() -> None:
    first = refs_with(job=calibration(cpu_ms=0.2, wall_ms=10.5, thread_overlap=0.6))
    later = calibration(cpu_ms=0.1, wall_ms=10.9, thread_overlap=0.9)
    again = refs_with(job=later, new=calibration())
    merged = first.merged(again).user
    assert set(merged) == {"job", "new"}
    # a workload timed once keeps its figures and its count of calls
    assert merged["new"] == calibration() and again.merged(first).user["new"] == calibration()
    assert merged["job"].cpu_ms == 0.1 and merged["job"].wall_ms == 10.5
    assert merged["job"].thread_overlap == 0.9 and merged["job"].jobs == 60
