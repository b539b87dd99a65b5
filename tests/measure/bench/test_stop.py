"""``poollab bench`` stopped half-way (SIGTERM, as a CI timeout sends it): nothing is left
running, and the cells measured so far are written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from poollab.launcher.redis_server import RedisServer
from tests.conftest import service_env

POOLLAB = str(Path(sys.executable).parent / "poollab")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_sigterm_stops_the_lab_and_every_consumer(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    env = {**os.environ, **service_env(redis_server.url + "/5")}
    out = tmp_path / "out"
    process = subprocess.Popen(
        [POOLLAB, "bench", "--pools", "prefork", "--workloads", "noop,sleep", "--modes", "live",
         "--profiles", "tuned", "--jobs", "60", "--io-latency-ms", "1000", "--out", str(out)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    state = out / "lab" / "state.json"
    pids: list[int] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and process.poll() is None:
        if state.exists():
            services = json.loads(state.read_text())["services"]
            if any(s["name"] == "worker-prefork" for s in services):
                pids = [s["pid"] for s in services]
                break
        time.sleep(0.2)
    assert pids, process.communicate(timeout=30)[0].decode()
    roots = [psutil.Process(pid) for pid in pids]
    tree = {p.pid for root in roots for p in (root, *root.children(recursive=True))}
    # the noop cell is done when its raw file is written; the sleep cell takes 30 s
    while time.monotonic() < deadline and not list((out / "raw").glob("*noop*")):
        time.sleep(0.2)
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=90)[0].decode()
    assert process.returncode == 130, output
    left = [pid for pid in tree if _alive(pid)]
    assert left == [], f"left behind: {left}"
    assert not state.exists()
    results = json.loads((out / "results.json").read_text())
    assert results["interrupted"] is True
    assert [(c["workload"], c["completed"]) for c in results["cells"]] == [("noop", 60)]
    assert (out / "report.html").exists()
