"""``poollab submit`` against real workers: a summary that counts what ran, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from poollab.launcher.lab import Lab

POOLLAB = str(Path(sys.executable).parent / "poollab")


def _env(lab: Lab) -> dict[str, str]:
    return {**os.environ, "POOLLAB_BROKER_URL": lab.settings.broker_url}


def test_submit_wait_summarises_every_job(running_lab: Lab) -> None:
    result = subprocess.run(
        [POOLLAB, "submit", "--pool", "threads", "--kind", "sleep", "--ms", "20",
         "--count", "40", "--wait", "--json", "--timeout", "120"],
        env=_env(running_lab),
        capture_output=True,
        text=True,
        timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["jobs"] == summary["completed"] == 40
    assert summary["failed"] == summary["missing"] == 0
    assert summary["throughput_per_s"] > 0
    # every job slept 20 ms, so no job's run time can be shorter
    assert summary["run_ms"]["p50"] >= 20
    assert summary["latency_ms"]["max"] >= summary["latency_ms"]["p50"] >= 20


def test_submit_without_wait_prints_one_id_per_job(running_lab: Lab) -> None:
    result = subprocess.run(
        [POOLLAB, "submit", "--pool", "solo", "--kind", "noop", "--x", "3", "--count", "3"],
        env=_env(running_lab),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) == 3


def test_submit_names_the_bad_flag_and_sends_nothing(running_lab: Lab) -> None:
    result = subprocess.run(
        [POOLLAB, "submit", "--pool", "solo", "--kind", "sleep", "--ms", "-4"],
        env=_env(running_lab),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--ms" in result.stderr
    assert "published" not in result.stderr
