"""``poollab soak`` for half a minute on real workers: the report's structure and its counts.

The memory slopes' values are not checked (half a minute says nothing about a leak, and the
machine is shared); that they are computed (RSS and USS), from the second half, for every
pool, is. So are the runs per job id (each once), and what makes the soak fail.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import pytest
import redis

from poollab.cli import main
from poollab.launcher.redis_server import RedisServer
from poollab.measure.soak import PoolLoad, RunCounter, _pool_reasons
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
    report = json.loads(out.read_text())
    assert status == 0, report["verdict"]
    assert report["verdict"] == {"ok": True, "reasons": []}
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
        assert counts["skipped"] == counts["skipped_backlog"] + counts["publish_failed"]
        assert counts["skipped_share"] <= 0.01
        # every job ran exactly once, counted from the publication of each stored result
        runs = data["runs"]
        assert runs["counted"] == counts["completed"] + counts["failed"], (pool, runs)
        assert runs["ran_twice"] == 0 and runs["max_per_id"] == 1 and runs["unseen"] == 0
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
        uss = data["uss_mb"]
        assert isinstance(uss["slope_mb_per_min"], float)
        assert 0 < uss["first"] <= rss["peak"] and uss["peak"] >= max(uss["first"], uss["last"])


def test_a_job_whose_result_is_stored_twice_is_counted_twice(own_redis: RedisServer) -> None:
    counter = RunCounter(own_redis.url + "/0").start()
    db = redis.Redis.from_url(own_redis.url + "/0")
    try:
        for status in ("STARTED", "SUCCESS", "SUCCESS"):  # a second run overwrites the first
            db.set("celery-task-meta-twice", json.dumps({"status": status}))
            db.publish("celery-task-meta-twice", json.dumps({"status": status}))
        db.publish("celery-task-meta-once", json.dumps({"status": "FAILURE"}))
        deadline = time.monotonic() + 10
        while counter.runs["once"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        counter.stop()
        db.close()
    assert counter.runs == {"twice": 2, "once": 1} and counter.broken is None


def test_what_makes_a_soak_fail() -> None:
    held = PoolLoad("solo", "worker-solo", published=990, skipped=10, skipped_backlog=10)
    assert _pool_reasons(held, [], [], 10 / 1000) == []
    load = PoolLoad("solo", "worker-solo", published=980, skipped=20, publish_failed=20)
    load.pending["lost-id"] = None
    reasons = " | ".join(_pool_reasons(load, ["dup-id"], [], 20 / 1000))
    assert "1 jobs have no result" in reasons
    assert "ran more than once, e.g. dup-id" in reasons
    assert "20 of 1000 jobs due were skipped (2.0% > 1%: 0 behind, 20 refused" in reasons
