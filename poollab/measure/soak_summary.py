"""The docs' summary of a soak: one row per pool from the report ``poollab soak`` wrote.

Kept apart from the soak itself so that a report can be summarised again later
(``python -m poollab.measure.soak_summary REPORT.json --summary OUT.json``) without running
the soak again.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from poollab.demo.result import Row
from poollab.measure.claims import summary

PACKAGES = ("celery", "kombu", "redis", "gevent", "psutil")


def at(samples: Sequence[dict[str, Any]], key: str, t_s: float) -> float | None:
    """The sample's value nearest to t_s seconds (samples without the value ignored)."""
    points = [s for s in samples if s.get(key) is not None]
    if not points:
        return None
    return float(min(points, key=lambda s: abs(s["t_s"] - t_s))[key])


def _signed(value: float | None, digits: int, unit: str) -> str:
    return "-" if value is None else f"{value:+.{digits}f} {unit}"


def _mb(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def columns(minutes: float, interval_s: float) -> list[str]:
    half, end = f"{minutes / 2:g} min", f"{minutes:g} min"
    return [
        "pool",
        "-c",
        "processes",
        "sent",
        "done",
        "failed",
        "pending",
        f"jobs/s mean (min–max per {interval_s:g} s)",
        "RSS start",
        "1 min",
        half,
        end,
        f"growth {minutes / 2:g}→{minutes:g} min",
        "RSS slope, 2nd half",
        "USS start → end",
        "USS slope, 2nd half",
    ]


def pool_row(pool: str, data: dict[str, Any], minutes: float, interval_s: float) -> Row:
    samples = data["samples"]
    counts, tput, rss, uss = (
        data["counts"],
        data["throughput_per_s"],
        data["rss_mb"],
        data["uss_mb"],
    )
    end_s = samples[-1]["t_s"] if samples else minutes * 60
    at_half = at(samples, "rss_mb", minutes * 30)
    at_end = at(samples, "rss_mb", end_s)
    growth = None if at_half is None or at_end is None else at_end - at_half
    spread = (
        f" ({tput['min_interval']:.1f}–{tput['max_interval']:.1f})"
        if tput["min_interval"] is not None
        else ""
    )
    names = columns(minutes, interval_s)
    cells: list[Any] = [
        pool,
        data["concurrency"],
        max((s["procs"] for s in samples), default=0),
        counts["published"],
        counts["completed"],
        counts["failed"],
        counts["pending"],
        f"{tput['mean']:.2f}{spread}",
        _mb(at(samples, "rss_mb", 0.0)),
        _mb(at(samples, "rss_mb", 60.0)),
        _mb(at_half),
        _mb(at_end),
        _signed(growth, 2, "MB"),
        _signed(rss["slope_mb_per_min"], 3, "MB/min"),
        "-" if uss["first"] is None else f"{uss['first']:.1f} → {uss['last']:.1f}",
        _signed(uss["slope_mb_per_min"], 3, "MB/min"),
    ]
    return dict(zip(names, cells, strict=True))


def _recorded(started: str) -> str:
    """The run's start (the report's local time with its offset) as the summaries' UTC date."""
    try:
        when = datetime.datetime.strptime(started, "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return summary.today()
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def build(report: dict[str, Any], busy_cores: float | None) -> summary.Summary:
    minutes, interval_s = float(report["minutes"]), float(report["interval_s"])
    record = summary.new("soak", report["command"] or "poollab soak", busy_cores)
    record.recorded = _recorded(report.get("started", ""))
    record.cpu_count = report["machine"]["cpus"] or record.cpu_count
    title = (
        f"{minutes:g} min at {report['rate_per_pool_per_s']:g} jobs/s per pool, sampled every "
        f"{interval_s:g} s: RSS and USS in MB over each worker's process tree, slopes fitted "
        "over the second half"
    )
    rows = [pool_row(pool, data, minutes, interval_s) for pool, data in report["pools"].items()]
    record.tables.append(summary.Table(title, columns(minutes, interval_s), rows))
    mix = ", ".join(
        " ".join([job["kind"], *(f"{k}={v:,}" for k, v in job["params"].items())])
        for job in report["job_mix"]
    )
    record.notes.append(f"each pool gets the mix in turn: {mix}")
    skipped = {pool: data["counts"]["skipped"] for pool, data in report["pools"].items()}
    record.notes.append(
        "jobs skipped (behind or refused by the broker): "
        + ", ".join(f"{pool} {n}" for pool, n in skipped.items())
    )
    twice = {pool: data["runs"]["ran_twice"] for pool, data in report["pools"].items()}
    record.notes.append(
        "jobs that ran more than once: " + ", ".join(f"{pool} {n}" for pool, n in twice.items())
    )
    load = report["machine"].get("load_avg_at_end")
    if load:
        record.notes.append(f"load average at the end (1, 5, 15 min): {', '.join(map(str, load))}")
    verdict = report["verdict"]
    record.notes.append(
        "verdict: passed" if verdict["ok"] else "verdict: failed: " + "; ".join(verdict["reasons"])
    )
    if report.get("prefork_flags"):
        record.notes.append("prefork worker flags: " + " ".join(report["prefork_flags"]))
    record.versions = {"python": report["machine"]["python"]}
    for package in PACKAGES:
        try:
            record.versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return record


def write(report: dict[str, Any], path: Path, busy_cores: float | None) -> None:
    summary.write(build(report, busy_cores), path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="summarise a poollab soak report for the docs")
    parser.add_argument("report", type=Path, help="the JSON report `poollab soak --out` wrote")
    parser.add_argument("--summary", type=Path, required=True, help="where to write the summary")
    parser.add_argument(
        "--busy-cores",
        type=float,
        help="cores other programs kept busy during the run (default: the report's)",
    )
    args = parser.parse_args(argv)
    try:
        report = json.loads(args.report.read_text())
    except (OSError, ValueError) as exc:
        print(f"cannot read the report {args.report}: {exc}", file=sys.stderr)
        return 2
    busy = args.busy_cores
    if busy is None:
        busy = report.get("machine", {}).get("other_cores")
    record = build(report, busy)
    # the run and its summary were two commands: the block says both
    command = shlex.join(["python", "-m", "poollab.measure.soak_summary", *(argv or sys.argv[1:])])
    record.notes.append(f"summarised from the run's report afterwards: `{command}`")
    summary.write(record, args.summary)
    print(f"wrote {args.summary}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
