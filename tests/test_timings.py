from __future__ import annotations

import math

from poollab.timings import JobTiming, percentile, summarize


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert math.isnan(percentile([], 50))


def test_summary_follows_the_design_definitions() -> None:
    timings = [
        JobTiming(sent=10.0, started=10.5, finished=11.0, pid=1),
        JobTiming(sent=10.0, started=11.0, finished=12.0, pid=2),
    ]
    summary = summarize(timings, jobs=3, failed=1)
    assert summary.completed == 2
    assert summary.failed == 1
    assert summary.duration_s == 2.0  # last finish − first send
    assert summary.throughput_per_s == 1.0
    assert summary.latency_ms["max"] == 2000.0
    assert summary.queue_wait_ms["p50"] == 500.0
    assert summary.run_ms["p99"] == 1000.0
    assert summary.pids == 2


def test_summary_of_nothing_is_zero() -> None:
    summary = summarize([], jobs=5, failed=5)
    assert summary.completed == 0
    assert summary.throughput_per_s == 0.0
