"""Picking cells out of a run for the charts, tables and verdicts."""

from __future__ import annotations

from collections.abc import Iterable

from poollab.measure.bench.config import ordered_workloads
from poollab.measure.bench.results import BenchCell, BenchRun
from poollab.measure.charts import OTHER_COLOR, POOL_COLORS, POOL_ORDER


def main_profile(run: BenchRun) -> str:
    """The profile the comparison is drawn for: tuned when the run has it."""
    profiles = list(run.config.profiles)
    return "tuned" if "tuned" in profiles else profiles[-1]


def main_mode(run: BenchRun) -> str:
    modes = list(run.config.modes)
    return "drain" if "drain" in modes else modes[0]


def workloads(run: BenchRun) -> list[str]:
    present = {c.workload for c in run.cells}
    return ordered_workloads(present, run.config.workloads)


def pool_rank(pool: str) -> int:
    return POOL_ORDER.index(pool) if pool in POOL_ORDER else len(POOL_ORDER)


def pool_color(pool: str) -> str:
    return POOL_COLORS.get(pool, OTHER_COLOR)


def cells(
    run: BenchRun,
    *,
    workload: str | None = None,
    mode: str | None = None,
    profile: str | None = None,
    pool: str | None = None,
) -> list[BenchCell]:
    chosen = [
        c
        for c in run.cells
        if (workload is None or c.workload == workload)
        and (mode is None or c.mode == mode)
        and (profile is None or c.profile == profile)
        and (pool is None or c.pool == pool)
    ]
    return sorted(chosen, key=lambda c: (pool_rank(c.pool), c.concurrency))


def best(candidates: Iterable[BenchCell]) -> BenchCell | None:
    """The cell with the highest throughput (ties: the least memory)."""
    ranked = sorted(candidates, key=lambda c: (-c.throughput_per_s, c.uss_mb.peak))
    return ranked[0] if ranked else None


def best_per_pool(candidates: Iterable[BenchCell]) -> list[BenchCell]:
    by_pool: dict[str, list[BenchCell]] = {}
    for cell in candidates:
        by_pool.setdefault(cell.pool, []).append(cell)
    found = [best(group) for group in by_pool.values()]
    return sorted((c for c in found if c), key=lambda c: pool_rank(c.pool))
