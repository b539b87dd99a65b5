"""Picking cells out of results.json for the charts, tables and verdicts."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from poollab.measure.bench.config import WORKLOADS
from poollab.measure.bench.table import POOL_ORDER

Cell = dict[str, Any]

POOL_COLORS = {
    "solo": "#7f7f7f",
    "prefork": "#d62728",
    "threads": "#1f77b4",
    "gevent": "#2ca02c",
    "asyncio": "#9467bd",
}


def num(value: Any) -> float:
    """A figure from results.json, NaN when it could not be measured (null)."""
    return float(value) if isinstance(value, int | float) else math.nan


def main_profile(results: dict[str, Any]) -> str:
    """The profile the comparison is drawn for: tuned when the run has it."""
    profiles = list(results["config"]["profiles"])
    return "tuned" if "tuned" in profiles else profiles[-1]


def main_mode(results: dict[str, Any]) -> str:
    modes = list(results["config"]["modes"])
    return "drain" if "drain" in modes else modes[0]


def workloads(results: dict[str, Any]) -> list[str]:
    present = {c["workload"] for c in results["cells"]}
    return [w for w in WORKLOADS if w in present]


def pool_rank(pool: str) -> int:
    return POOL_ORDER.index(pool) if pool in POOL_ORDER else len(POOL_ORDER)


def cells(
    results: dict[str, Any],
    *,
    workload: str | None = None,
    mode: str | None = None,
    profile: str | None = None,
    pool: str | None = None,
) -> list[Cell]:
    chosen = [
        c
        for c in results["cells"]
        if (workload is None or c["workload"] == workload)
        and (mode is None or c["mode"] == mode)
        and (profile is None or c["profile"] == profile)
        and (pool is None or c["pool"] == pool)
    ]
    return sorted(chosen, key=lambda c: (pool_rank(c["pool"]), c["concurrency"]))


def label(cell: Cell) -> str:
    return f"{cell['pool']} c={cell['concurrency']}"


def best(candidates: Iterable[Cell]) -> Cell | None:
    """The cell with the highest throughput (ties: the least memory)."""
    ranked = sorted(
        candidates,
        key=lambda c: (-num(c["throughput_per_s"]), num(c["uss_mb"].get("peak"))),
    )
    return ranked[0] if ranked else None


def best_per_pool(candidates: Iterable[Cell]) -> list[Cell]:
    by_pool: dict[str, list[Cell]] = {}
    for cell in candidates:
        by_pool.setdefault(cell["pool"], []).append(cell)
    found = [best(group) for group in by_pool.values()]
    return sorted((c for c in found if c), key=lambda c: pool_rank(c["pool"]))
