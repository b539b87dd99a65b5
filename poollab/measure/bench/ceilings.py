"""Reference ceilings: what a cell could do at best, so that every result is also a ratio.

CPU-bound work: ``cores × solo rate`` (the solo pool's drain rate on the same
jobs, measured in the same run); I/O-bound work, ``concurrency / latency``, or the CPU bound
when lower. A pool cannot run more jobs at once than its concurrency either, so the slot
bound ``concurrency / time per job`` applies to every workload (it is what holds for solo).
The same definitions for the reader of results.json: docs/results-format.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from poollab.measure.bench.config import WAITING_WORKLOADS

Bound = Literal["cpu", "io", "concurrency", "unknown"]


@dataclass(frozen=True)
class References:
    """Rates measured in the same run that every ceiling is derived from."""

    cores: int
    # the solo pool's drain rate on noop jobs: the per-job cost of the path itself
    solo_noop_per_s: float
    # the solo pool's drain rate on cpu jobs of the run's n
    solo_cpu_per_s: float
    cpu_n: int
    mixed_cpu_n: int
    io_latency_ms: int
    source: str

    def cpu_seconds(self, workload: str) -> float:
        """CPU time one job of this workload costs at least (the path plus its own work)."""
        path = 1 / self.solo_noop_per_s if self.solo_noop_per_s > 0 else math.nan
        cpu_job = 1 / self.solo_cpu_per_s if self.solo_cpu_per_s > 0 else math.nan
        if workload == "cpu":
            return cpu_job
        if workload == "mixed":
            # the path once, plus the mixed job's share of a cpu job's own work
            return path + (cpu_job - path) * self.mixed_cpu_n / self.cpu_n
        return path

    def wait_seconds(self, workload: str) -> float:
        return self.io_latency_ms / 1000 if workload in WAITING_WORKLOADS else 0.0


@dataclass(frozen=True)
class Ceiling:
    per_s: float
    bound: Bound


def ceiling(refs: References, workload: str, concurrency: int) -> Ceiling:
    cpu_s = refs.cpu_seconds(workload)
    if not math.isfinite(cpu_s) or cpu_s <= 0:
        return Ceiling(math.nan, "unknown")
    cpu_bound = refs.cores / cpu_s
    waits = workload in WAITING_WORKLOADS
    # sleep and io: concurrency / latency; mixed adds its CPU part
    per_job = refs.wait_seconds(workload) + (cpu_s if not waits or workload == "mixed" else 0)
    slot_bound = concurrency / per_job
    if slot_bound <= cpu_bound:
        return Ceiling(round(slot_bound, 3), "io" if waits else "concurrency")
    return Ceiling(round(cpu_bound, 3), "cpu")


def efficiency(throughput: float, ceiling_per_s: float) -> float:
    if not math.isfinite(ceiling_per_s) or ceiling_per_s <= 0:
        return math.nan
    return round(throughput / ceiling_per_s, 4)
