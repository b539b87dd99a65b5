"""``poollab soak`` for half a minute on real workers: the report's structure and its counts.

The memory slope's value is not checked (half a minute says nothing about a leak, and the
machine is shared); that it is computed, from the second half, for every pool, is.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from poollab.cli import main
from poollab.launcher.redis_server import RedisServer
from poollab.settings import ALL_POOLS

pytestmark = pytest.mark.faults

MINUTES = 0.35
RATE = 4.0
INTERVAL = 1.0


def test_a_short_soak_reports_throughput_memory_and_counts_that_add_up(
    tmp_path: Path, own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POOLLAB_BROKER_URL", own_redis.url + "/0")
    out = tmp_path / "soak.json"
    chart = tmp_path / "soak.png"
    status = main(
        [
            "soak",
            "--minutes", str(MINUTES),
            "--rate", str(RATE),
            "--interval", str(INTERVAL),
            "--drain-s", "60",
            "--max-tasks-per-child", "50",
            "--run-dir", str(tmp_path / "run"),
            "--out", str(out),
            "--chart", str(chart),
        ]
    )  # fmt: skip
    assert status == 0
    report = json.loads(out.read_text())
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(report["pools"]) == set(ALL_POOLS)
    assert report["prefork_flags"] == ["--max-tasks-per-child", "50"]
    duration_s = MINUTES * 60
    for pool, data in report["pools"].items():
        counts = data["counts"]
        # every job sent is accounted for, and none is left unfinished
        assert counts["published"] == counts["completed"] + counts["failed"] + counts["pending"]
        assert counts["pending"] == 0, (pool, counts)
        assert counts["failed"] == 0, (pool, data["failures"])
        # the load was held at the rate: what was due was either sent or knowingly skipped
        due = counts["published"] + counts["skipped"]
        assert RATE * duration_s - RATE - 1 <= due <= RATE * duration_s + 1, (pool, counts)
        assert data["exited"] is None
        samples = data["samples"]
        assert len(samples) >= duration_s / INTERVAL * 0.8
        assert [s["t_s"] for s in samples] == sorted(s["t_s"] for s in samples)
        assert all(s["rss_mb"] > 0 and s["procs"] >= 1 for s in samples), pool
        # the cumulative counts in the samples only grow and end at the totals before drain
        done = [s["completed"] + s["failed"] for s in samples]
        assert done == sorted(done) and done[-1] <= counts["completed"] + counts["failed"]
        # throughput per interval adds up to the jobs done during the run (the first sample
        # has no interval before it)
        summed = sum(
            s["throughput_per_s"] * (s["t_s"] - prev["t_s"])
            for prev, s in itertools.pairwise(samples)
        )
        assert summed == pytest.approx(done[-1] - done[0], abs=1.0)
        rss = data["rss_mb"]
        assert isinstance(rss["slope_mb_per_min"], float)
        start, end = rss["slope_window_s"]
        assert start >= duration_s / 2 and end <= samples[-1]["t_s"]
        assert rss["peak"] >= max(rss["first"], rss["last"])
