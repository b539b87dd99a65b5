"""celery-aio-pool run for real: a Celery worker with ``-P custom`` on the lab's messages."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from poollab.measure.peers.cli import main

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("celery_aio_pool") is None,
    reason="celery-aio-pool is not installed: pip install -e '.[dev]' installs its pin",
)


def test_the_aio_pool_runs_the_labs_jobs_one_at_a_time(tmp_path: Path) -> None:
    summary = tmp_path / "peers.json"
    argv = [
        "--systems", "celery-aio-pool", "--kinds", "noop,io", "--modes", "drain",
        "--noop-jobs", "20", "--io-jobs", "20", "--latency-ms", "50",
        "--run-timeout", "60", "--out", str(tmp_path), "--summary", str(summary),
    ]  # fmt: skip
    assert main(argv) == 0
    cases = json.loads((tmp_path / "results.json").read_text())
    assert {(c["kind"], c["completed"], c["failed"]) for c in cases} == {
        ("noop", 20, 0),
        ("io", 20, 0),
    }
    io = next(c for c in cases if c["kind"] == "io")
    # the pool waits for each coroutine before taking the next message: 20 jobs of 50 ms
    # take at least 1 s, so at most 20/s (25/s allows the clocks' resolution), at -c 500
    assert 0 < io["rate_steady"] <= 25
    record = json.loads(summary.read_text())
    assert record["versions"]["celery-aio-pool"] == "0.1.0rc8"
    assert record["command"].startswith("python -m poollab.measure.peers --systems celery-aio-pool")
    assert record["busy_cores"] is not None
    commands = next(t for t in record["tables"] if t["title"].startswith("worker commands"))
    (command,) = (row["command"] for row in commands["rows"])
    assert command.startswith("`CELERY_CUSTOM_WORKER_POOL=celery_aio_pool.pool:AsyncIOPool celery")
    assert " -P custom " in command
