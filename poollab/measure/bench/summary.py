"""A bench run's cells as a docs/results summary: the table BENCHMARKS.md renders.

``python -m poollab.measure.bench.summary OUT.json NAME RESULTS.json [RESULTS.json ...]
--command "..."`` writes one Summary (poollab.measure.claims.summary) with a row per cell of
every run given: the figures a reader checks a claim against (rate, ceiling, × solo, the
repeats' spread, the flag, the CPU per job of the main process and its children, the cores
other programs used), and the run's own command. Raw per-job data stays in the run's directory.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

from poollab.demo.result import Cell, Row
from poollab.measure.bench.results import BenchCell, BenchRun, load_results
from poollab.measure.claims import summary

COLUMNS = [
    "profile", "pool", "c", "workload", "mode", "jobs", "done", "jobs/s", "ceiling/s",
    "of ceiling", "bound", "× solo", "repeats' spread", "flag", "steady s", "CPU ms/job main",
    "CPU ms/job children", "other cores",
]  # fmt: skip


def _round(value: float, digits: int) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


def _flag(cell: BenchCell) -> str:
    marks = []
    if cell.pathology is not None:
        marks.append(f"⚠ {cell.pathology.cause or 'cause not known'}")
    if cell.short:
        marks.append("short")
    return ", ".join(marks)


def _spread(cell: BenchCell) -> str | None:
    """(max − min) / mean of the repeats' rates; None with one run."""
    spread = cell.throughput_spread
    return f"{spread * 100:.0f}%" if spread is not None and math.isfinite(spread) else None


def cell_row(cell: BenchCell) -> Row:
    values: list[Cell] = [
        cell.profile, cell.pool, cell.concurrency, cell.workload, cell.mode, cell.jobs,
        cell.completed, _round(cell.throughput_per_s, 1), _round(cell.ceiling_per_s, 0),
        f"{cell.efficiency * 100:.0f}%" if math.isfinite(cell.efficiency) else None,
        cell.bound, _round(cell.x_solo, 2), _spread(cell), _flag(cell), _round(cell.steady_s, 2),
        _round(cell.cpu_ms_per_job.main_ms, 2), _round(cell.cpu_ms_per_job.children_ms, 2),
        _round(cell.contention.other_cores, 2),
    ]  # fmt: skip
    return dict(zip(COLUMNS, values, strict=True))


def run_title(run: BenchRun) -> str:
    bodies = ", ".join(f"{w} {b.cpu_ms:.3g} ms" for w, b in run.references.bodies.items())
    params = "; ".join(
        f"{w} " + ", ".join(f"{k}={v}" for k, v in p.items()) for w, p in run.config.params.items()
    )
    return f"{params} (job bodies' CPU in a bare loop: {bodies})"


def bench_summary(name: str, command: str, runs: list[BenchRun]) -> summary.Summary:
    others = [c.contention.other_cores for r in runs for c in r.cells]
    others = [o for o in others if math.isfinite(o)]
    found = summary.new(name, command, statistics.fmean(others) if others else None)
    for run in runs:
        found.tables.append(
            summary.Table(run_title(run), list(COLUMNS), [cell_row(c) for c in run.cells])
        )
        found.versions.update(
            {k: v for k, v in run.machine.libraries.items() if k in ("celery", "kombu", "gevent")}
        )
    found.notes.append(
        "of ceiling: throughput / the least of slots, cores and (live) offered; flag ⚠ below "
        "25% of it with its cause, short: steady state below --cell-s; CPU ms/job: the "
        "consumer's main process and its children over the cell; other cores: what other "
        "programs kept busy meanwhile"
    )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("out", type=Path)
    parser.add_argument("name")
    parser.add_argument("results", type=Path, nargs="+")
    parser.add_argument("--command", required=True, help="the bench commands, as typed")
    args = parser.parse_args(argv)
    try:
        runs = [load_results(path) for path in args.results]
    except (OSError, ValueError) as exc:
        print(f"summary: {exc}", file=sys.stderr)
        return 2
    summary.write(bench_summary(args.name, args.command, runs), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
