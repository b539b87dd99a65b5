"""How many jobs a warm-up and a cell get, so that every cell takes about the same time.

A fixed count would take 0.1 s on gevent and a minute on solo for the same I/O jobs; the
count follows the rate the warm-up measured instead (``--jobs`` fixes it).
"""

from __future__ import annotations

import time

from poollab.jobs import cpu_work
from poollab.measure.bench.config import BenchConfig

WARMUP_S = 0.4
NOOP_RATE_GUESS = 300.0


def time_cpu_job(n: int, tries: int = 3) -> float:
    """Seconds one cpu job's work takes in this process (the best of a few tries)."""
    best = float("inf")
    for _ in range(tries):
        began = time.perf_counter()
        cpu_work(n)
        best = min(best, time.perf_counter() - began)
    return best


def guess_rate(
    config: BenchConfig, pool: str, workload: str, level: int, cores: int, cpu_job_s: float
) -> float:
    """A rough rate before anything is measured, only to size the warm-up."""
    latency = config.io_latency_ms / 1000
    parallel = min(level, cores) if pool in ("prefork", "asyncio") else 1
    if workload == "noop":
        return NOOP_RATE_GUESS
    if workload == "cpu":
        return parallel / cpu_job_s
    mixed_s = cpu_job_s * config.mixed_cpu_n / config.cpu_n if workload == "mixed" else 0.0
    waiting = level / max(latency + mixed_s, 1e-3)
    return min(waiting, parallel / mixed_s) if mixed_s else min(waiting, 1000.0)


def warmup_jobs(level: int, rate: float) -> int:
    return int(min(max(rate * WARMUP_S, 5), max(5, min(2 * level, 200))))


def cell_jobs(config: BenchConfig, level: int, rate: float) -> int:
    if config.jobs is not None:
        return config.jobs
    target = rate * config.cell_s
    # every slot busy at least twice, unless that would take more than twice the target
    lower = max(config.min_jobs, min(2 * level, 2 * target))
    return int(min(max(target, lower), config.max_jobs))


def cell_timeout_s(jobs: int, rate: float) -> float:
    expected = jobs / max(rate, 0.5)
    return min(max(30.0, expected * 5 + 10), 900.0)
