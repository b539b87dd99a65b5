"""results.json: one object per cell, the machine, the configuration (docs/results-format.md)."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from poollab.measure.bench.ceilings import References, ceiling, efficiency
from poollab.measure.bench.cell import Measured
from poollab.measure.bench.lab import WorkerRun
from poollab.measure.bench.profiles import describe

FORMAT = "poollab-bench/1"
CELL_KEYS = ("profile", "pool", "concurrency", "workload", "mode")


def cell_record(measured: Measured, worker: WorkerRun, raw_path: str) -> dict[str, Any]:
    spec, summary, res = measured.spec, measured.summary, measured.resources
    uss_peak = res.uss_mb["peak"]
    return {
        "pool": spec.pool,
        "workload": spec.workload,
        "concurrency": spec.concurrency,
        "mode": spec.mode,
        "profile": spec.profile,
        "repeat": spec.repeat,
        "params": spec.params,
        "jobs": measured.jobs,
        "completed": summary.completed,
        "failed": summary.failed,
        "lost": measured.lost,
        "early": measured.early,
        "duration_s": summary.duration_s,
        "throughput_per_s": summary.throughput_per_s,
        "latency_ms": summary.latency_ms,
        "queue_wait_ms": summary.queue_wait_ms,
        "run_ms": summary.run_ms,
        "rss_mb": res.rss_mb,
        "uss_mb": res.uss_mb,
        "pss_mb": res.pss_mb,
        "uss_mb_per_slot": round(uss_peak / spec.concurrency, 3)
        if math.isfinite(uss_peak)
        else math.nan,
        "cpu_cores": res.cpu_cores,
        "ceiling_per_s": math.nan,
        "efficiency": math.nan,
        "bound": "unknown",
        "publish_per_s": measured.publish_per_s,
        "pids": summary.pids,
        "procs": res.procs,
        "samples": res.samples,
        # epoch seconds, unrounded: the first start (drain) or send (live), the last finish
        "window": list(measured.window),
        "contention": measured.contention,
        "redis": measured.redis,
        "command": describe(worker.service),
        "raw": raw_path,
    }


def cell_key(cell: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(cell[k] for k in CELL_KEYS)


def merge_repeats(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One object per cell: the repeat with the median throughput, the others listed."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(cell_key(record), []).append(record)
    cells = []
    for group in groups.values():
        ordered = sorted(group, key=lambda r: r["throughput_per_s"])
        chosen = dict(ordered[(len(ordered) - 1) // 2])
        if len(group) > 1:
            rates = [r["throughput_per_s"] for r in group]
            chosen["repeats"] = [
                {k: r[k] for k in ("repeat", "throughput_per_s", "duration_s", "raw")}
                for r in group
            ]
            chosen["throughput_spread"] = (
                round((max(rates) - min(rates)) / statistics.fmean(rates), 4)
                if statistics.fmean(rates) > 0
                else math.nan
            )
        cells.append(chosen)
    return cells


def apply_ceilings(cells: list[dict[str, Any]], refs: References) -> None:
    for cell in cells:
        found = ceiling(refs, cell["workload"], cell["concurrency"])
        cell["ceiling_per_s"] = found.per_s
        cell["bound"] = found.bound
        cell["efficiency"] = efficiency(cell["throughput_per_s"], found.per_s)


def _clean(value: Any) -> Any:
    """JSON has no NaN: a figure that could not be measured is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_results(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(results), indent=2, allow_nan=False) + "\n")


def load_results(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} file")
    return data
