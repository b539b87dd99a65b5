"""The lab's asyncio consumer, measured by its own loop-lag metric under CPU jobs.

For each ``--cpu-executor`` (inline, thread, process) a real ``poollab consume`` process
runs on an embedded Redis of its own, takes the same CPU jobs and writes samples whose
``loop_lag_s`` is what the collector serves as ``poollab_event_loop_lag_seconds``.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import redis

from poollab.demo.result import Row
from poollab.launcher.redis_server import RedisServer
from poollab.measure.samples import read_samples

EXECUTORS = ("inline", "thread", "process")
COLUMNS = ["cpu_executor", "jobs", "job_run_ms", "wall_s", "jobs_per_s", "lag_max_ms", "samples"]
CONCURRENCY = 4
SAMPLE_INTERVAL_S = 0.2
START_TIMEOUT_S = 30.0


def measure(jobs: int, steps: int, on_each: Callable[[], None]) -> list[Row]:
    """Start a consumer per executor at once (each on a queue of its own, so that starting
    costs one wait, not three), then load them one at a time: an idle consumer only beats."""
    from celery import Celery

    from poollab.celery_config import make_celery
    from poollab.hooks.liveness import is_alive
    from poollab.settings import Settings

    rows = []
    with RedisServer() as server:
        url = server.url + "/0"
        settings = Settings(broker_url=url)
        processes = {executor: _start(url, executor) for executor in EXECUTORS}
        app: Celery = make_celery("blocked-loop", settings=settings)
        try:
            for executor, process in processes.items():
                _wait_alive(process, functools.partial(is_alive, settings, _node(executor)))
            for executor in EXECUTORS:
                rows.append(_load(app, url, executor, jobs, steps))
                on_each()
        finally:
            app.close()
            for process in processes.values():
                _stop(process)
    return rows


def _node(executor: str) -> str:
    return f"blocked-loop-{executor}@demo"


def _start(url: str, executor: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "POOLLAB_BROKER_URL": url,
        "POOLLAB_RESULT_BACKEND": "",
        "POOLLAB_SAMPLE_INTERVAL_S": str(SAMPLE_INTERVAL_S),
    }
    argv = [sys.executable, "-m", "poollab.consumer", "-n", _node(executor), "--loop", "asyncio"]
    argv += ["-Q", f"blocked-loop-{executor}", "-c", str(CONCURRENCY)]
    argv += ["--cpu-executor", executor, "--cpu-workers", "1"]
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )


def _load(app: Any, url: str, executor: str, jobs: int, steps: int) -> Row:
    from poollab.jobs import SENT_HEADER

    def send(count: int) -> list[dict[str, Any]]:
        sent = [
            app.send_task(
                "poollab.cpu",
                kwargs={"n": steps},
                queue=f"blocked-loop-{executor}",
                headers={SENT_HEADER: time.time()},
            )
            for _ in range(count)
        ]
        return [result.get(timeout=60) for result in sent]

    # one job first, outside the window: starting the pool's workers is not what the lag
    # should show, and the first job's imports neither
    send(1)
    time.sleep(2 * SAMPLE_INTERVAL_S)
    since = time.time()
    start = time.perf_counter()
    values = send(jobs)
    wall = time.perf_counter() - start
    time.sleep(2 * SAMPLE_INTERVAL_S)  # the next sample carries the last job's lag
    client = redis.Redis.from_url(url)
    try:
        samples = read_samples(client, "asyncio", since, time.time(), _node(executor))
    finally:
        client.close()
    lags = [s.loop_lag_s for s in samples if s.loop_lag_s is not None]
    runs = sorted(v["timings"]["finished"] - v["timings"]["started"] for v in values)
    return {
        "cpu_executor": executor,
        "jobs": jobs,
        "job_run_ms": round(runs[len(runs) // 2] * 1000, 1),
        "wall_s": round(wall, 3),
        "jobs_per_s": round(jobs / wall, 1),
        "lag_max_ms": round(max(lags) * 1000, 1) if lags else None,
        "samples": len(lags),
    }


def _wait_alive(process: subprocess.Popen[bytes], alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"the consumer exited {process.returncode}: {err[-500:]}")
        if alive():
            return
        time.sleep(0.05)
    raise RuntimeError(f"the consumer was not alive after {START_TIMEOUT_S:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stderr is not None:
        process.stderr.close()


def failures(rows: list[Row], inline_share: float, process_share: float) -> list[str]:
    """What contradicts the claim: inline at least a share of a job's run time, a process
    pool under a share of one."""
    found = []
    for row in rows:
        lag, run = row["lag_max_ms"], float(row["job_run_ms"] or 0)
        if lag is None:
            found.append(f"the consumer with --cpu-executor {row['cpu_executor']} reported no lag")
        elif row["cpu_executor"] == "inline" and float(lag) < inline_share * run:
            found.append(f"consumer inline: lag {lag} ms < {inline_share:.0%} of a {run} ms job")
        elif row["cpu_executor"] == "process" and float(lag) >= process_share * run:
            found.append(f"consumer process: lag {lag} ms ≥ {process_share:.0%} of a {run} ms job")
    return found


def describe(rows: list[Row]) -> str:
    figures = ", ".join(f"{r['cpu_executor']} {r['lag_max_ms']} ms" for r in rows)
    run = rows[0]["job_run_ms"] if rows else None
    return f"the consumer's own worst loop lag: {figures} (a job runs {run} ms inline)"
