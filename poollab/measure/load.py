"""``poollab load``: Locust, headless, against the running lab; its CSV folded into a summary.

Locust runs as a subprocess (``locust -f loadtest/locustfile.py --headless ...``), never
imported here: it monkey-patches the standard library with gevent on import, which must
not happen to this process. What it writes (``locust_stats.csv``, the history, failures
and an HTML report) stays in ``--out``, beside ``load.json`` and ``load.md``: one row per
request type and ``pool:kind``, which :func:`summarize_locust_csv` reads back for the
bench report.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from poollab.cli import CliError
from poollab.settings import Settings, get_settings

USER_CLASSES = {"http": ["HttpJobUser"], "celery": ["CeleryJobUser"]}
USER_CLASSES["both"] = [*USER_CLASSES["http"], *USER_CLASSES["celery"]]
CSV_PREFIX = "locust"

# Locust's CSV column → our key; times are milliseconds
_COLUMNS = {
    "Request Count": "requests",
    "Failure Count": "failures",
    "Requests/s": "rps",
    "Failures/s": "failures_per_s",
    "Average Response Time": "mean_ms",
    "Min Response Time": "min_ms",
    "Max Response Time": "max_ms",
    "50%": "p50_ms",
    "95%": "p95_ms",
    "99%": "p99_ms",
}


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "load",
        help="drive the running lab with Locust (headless) and summarize per pool",
        description=(
            "Run Locust headless against the running lab for a set time: HTTP users post "
            "jobs to the producer and wait for each result, Celery users send them to the "
            "broker by task name. Writes Locust's CSV and HTML report and a summary "
            "(load.json, load.md) into --out."
        ),
    )
    parser.add_argument(
        "-u", "--users", type=int, default=10,
        help="concurrent users (10), split between the user classes, each over the pools",
    )  # fmt: skip
    parser.add_argument(
        "-r", "--spawn-rate", type=float, default=10.0, help="users started per second (10)"
    )
    parser.add_argument(
        "-t", "--run-time", default="20s", help="how long: 20s, 2m, 1m30s (default 20s)"
    )
    parser.add_argument(
        "--user",
        choices=sorted(USER_CLASSES),
        default="both",
        help="http (through the producer), celery (straight to the broker) or both",
    )
    parser.add_argument(
        "--host", help="the producer's URL (default http://127.0.0.1:POOLLAB_PRODUCER_PORT)"
    )
    # unset: Locust's own defaults for these (loadtest/loadmix.py), or POOLLAB_LOAD_*
    parser.add_argument("--pools", help="pools and weights: prefork,gevent:2 (default: all)")
    parser.add_argument("--kinds", help="job kinds, comma-separated (default: io,cpu)")
    parser.add_argument("--params", help='per-kind params as JSON: {"io": {"ms": 20}}')
    parser.add_argument(
        "--assign", choices=["pool", "round-robin"],
        help="pool: each user keeps to one pool, users spread over the pools (default); "
        "round-robin: each user goes through every pool in turn",
    )  # fmt: skip
    parser.add_argument(
        "--job-timeout", type=float, default=30.0, help="seconds to wait for one job (30)"
    )
    parser.add_argument(
        "--shape", choices=["constant", "step"],
        help="constant: --users throughout; step: a ramp that finds each pool's saturation",
    )  # fmt: skip
    parser.add_argument("--step-users", type=int, help="users added per step (5)")
    parser.add_argument("--step-time", type=float, help="seconds per step (10)")
    parser.add_argument("--step-max-users", type=int, help="top step's users (50)")
    parser.add_argument(
        "--out", type=Path, default=Path(".poollab/load"), help="directory for the results"
    )
    parser.add_argument("--locustfile", type=Path, help="default: loadtest/locustfile.py")
    parser.set_defaults(func=run)


def parse_timespan(text: str) -> int:
    """Locust's time format (``20``, ``20s``, ``2m``, ``1h30m``) in seconds."""
    text = text.strip().lower()
    if text.isdigit():
        return int(text)
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if not text or match is None:
        raise CliError(f"--run-time: expected e.g. 20s, 2m or 1h30m, not {text!r}")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def find_locustfile(given: Path | None) -> Path:
    if given is not None:
        if not given.is_file():
            raise CliError(f"--locustfile: no such file {given}")
        return given
    # the working tree (or /app in the image), then beside the installed package
    for candidate in (
        Path("loadtest/locustfile.py"),
        Path(__file__).resolve().parent.parent / "loadtest" / "locustfile.py",
    ):
        if candidate.is_file():
            return candidate
    raise CliError("cannot find loadtest/locustfile.py; pass --locustfile")


def locust_command() -> str:
    """This interpreter's locust, so the load runs with the project's pinned versions."""
    beside = Path(sys.executable).parent / "locust"
    if beside.exists():
        return str(beside)
    found = shutil.which("locust")
    if found is None:
        raise CliError("locust is not installed")
    return found


def build_argv(args: argparse.Namespace, locustfile: Path, host: str, prefix: Path) -> list[str]:
    run_time_s = parse_timespan(args.run_time)
    argv = [
        locust_command(), "-f", str(locustfile), "--headless",
        "-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{run_time_s}s",
        "--host", host,
        "--csv", str(prefix), "--html", str(prefix.parent / f"{CSV_PREFIX}.html"),
        # a history row per pool:kind each second, not only the total: what the step
        # shape's per-pool throughput at each level is read from
        "--csv-full-history",
        # users finish the job they wait for (bounded by the job timeout), so every job
        # sent is also reported, and the counts match the workers'
        "--stop-timeout", f"{args.job_timeout:g}",
        "--only-summary", "--loglevel", "WARNING",
        "--load-job-timeout", f"{args.job_timeout:g}",
    ]  # fmt: skip
    optional = {
        "--load-pools": args.pools,
        "--load-kinds": args.kinds,
        "--load-params": args.params,
        "--load-assign": args.assign,
        "--load-shape": args.shape,
        "--step-users": args.step_users,
        "--step-time": args.step_time,
        "--step-max-users": args.step_max_users,
    }
    for flag, value in optional.items():
        if value is not None:
            argv += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return [*argv, *USER_CLASSES[args.user]]


def _check_lab(args: argparse.Namespace, host: str, settings: Settings) -> None:
    from poollab.launcher.redis_server import answers

    if args.user in ("http", "both"):
        try:
            with urllib.request.urlopen(f"{host}/healthz", timeout=3):
                pass
        except (urllib.error.URLError, OSError) as exc:
            raise CliError(
                f"the producer does not answer at {host} ({exc}); is the lab up (`poollab up`)?"
            ) from None
    if args.user in ("celery", "both") and not answers(settings.broker_url):
        raise CliError(f"no Redis answers at {settings.broker_url} (POOLLAB_BROKER_URL)")


def run(args: argparse.Namespace) -> int:
    if args.users < 1 or args.spawn_rate <= 0:
        raise CliError("--users must be at least 1 and --spawn-rate above 0")
    if not 0 < args.job_timeout <= 600:
        raise CliError("--job-timeout must be in (0, 600] seconds")
    run_time_s = parse_timespan(args.run_time)
    if run_time_s < 1:
        raise CliError("--run-time must be at least 1 s")
    settings = get_settings()
    host = (args.host or f"http://127.0.0.1:{settings.producer_port}").rstrip("/")
    _check_lab(args, host, settings)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / CSV_PREFIX
    argv = build_argv(args, find_locustfile(args.locustfile), host, prefix)
    # bounded: the run, the graceful stop, and a margin for Locust's start and exit
    limit_s = run_time_s + args.job_timeout + 60
    started = time.time()
    log_path = out / f"{CSV_PREFIX}.log"
    print(f"locust: {args.users} users for {run_time_s} s against {host} (log: {log_path})")
    # Locust's own output (its full table, its warnings) goes to the log; ours is shorter
    with log_path.open("wb") as log:
        try:
            completed = subprocess.run(
                argv, env=dict(os.environ), timeout=limit_s, check=False,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise CliError(
                f"locust did not finish within {limit_s:.0f} s; see {log_path}"
            ) from None
    stats = Path(f"{prefix}_stats.csv")
    if completed.returncode not in (0, 1) or not stats.is_file():
        raise CliError(
            f"locust failed (exit status {completed.returncode}); the end of {log_path}:\n"
            + _tail(log_path)
        )
    rows = summarize_locust_csv(stats)
    history = Path(f"{prefix}_stats_history.csv")
    steps = summarize_steps(history) if history.is_file() else []
    summary = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "host": host,
        "users": args.users,
        "spawn_rate": args.spawn_rate,
        "run_time_s": run_time_s,
        "shape": args.shape or os.environ.get("POOLLAB_LOAD_SHAPE", "constant"),
        "user_classes": USER_CLASSES[args.user],
        "locust_exit_code": completed.returncode,
        "files": {
            "stats": stats.name,
            "history": f"{CSV_PREFIX}_stats_history.csv",
            "failures": f"{CSV_PREFIX}_failures.csv",
            "html": f"{CSV_PREFIX}.html",
            "log": log_path.name,
        },
        "rows": rows,
        # per user level (the step shape's steps; one level for a constant run)
        "steps": steps,
    }
    (out / "load.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "load.md").write_text(markdown_table(rows, summary) + markdown_steps(steps))
    _print_rows(rows)
    print(f"results in {out}/ (load.md, load.json, {stats.name}, {CSV_PREFIX}.html)")
    failed = sum(row["failures"] for row in rows)
    if completed.returncode != 0:
        # Locust exits 1 when any request failed: so does this command, after writing it all
        print(f"{failed} of {sum(row['requests'] for row in rows)} jobs failed; "
              f"see {CSV_PREFIX}_failures.csv", file=sys.stderr)  # fmt: skip
    return completed.returncode


def _tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _number(text: str | None) -> float | None:
    if text is None or text.strip() in ("", "N/A"):
        return None
    return float(text)


def summarize_locust_csv(path: str | Path) -> list[dict[str, Any]]:
    """One dict per request row of Locust's ``*_stats.csv`` (the Aggregated row left out).

    ``path`` is the stats file or the ``--csv`` prefix it was written with. Keys: ``type``
    (``http`` or ``celery``), ``name`` (``pool:kind``), ``pool``, ``kind``, ``requests``,
    ``failures``, ``rps``, ``failures_per_s``, ``mean_ms``, ``min_ms``, ``max_ms``,
    ``p50_ms``, ``p95_ms``, ``p99_ms`` (None where Locust wrote N/A). ``rps`` is over the
    whole run, ramp-up included.
    """
    stats = Path(path)
    if not stats.name.endswith("_stats.csv"):
        stats = Path(f"{stats}_stats.csv")
    rows: list[dict[str, Any]] = []
    with stats.open(newline="") as handle:
        for record in csv.DictReader(handle):
            if record.get("Name") == "Aggregated":
                continue
            name = record["Name"]
            pool, _, kind = name.partition(":")
            row: dict[str, Any] = {
                "type": record["Type"],
                "name": name,
                "pool": pool if kind else None,
                "kind": kind or None,
            }
            for column, key in _COLUMNS.items():
                value = _number(record.get(column))
                row[key] = int(value) if key in ("requests", "failures") and value else value
            row["requests"] = row["requests"] or 0
            row["failures"] = row["failures"] or 0
            rows.append(row)
    return rows


def summarize_steps(path: str | Path, min_seconds: float = 2.0) -> list[dict[str, Any]]:
    """Jobs/s of each ``pool:kind`` at each number of users, from a full-history CSV.

    Locust writes one history row per request name each second, with its running total;
    within a stretch of seconds at one user count, the total's increase over the time is
    that level's throughput. A level shorter than ``min_seconds`` (a ramp passing through)
    is left out. ``saturated`` marks the first level whose throughput is not 10 % above the
    previous one's: the pool's saturation point, where more users add only latency.
    """
    levels: dict[tuple[str, str, int], list[tuple[float, int, float | None]]] = {}
    with Path(path).open(newline="") as handle:
        for record in csv.DictReader(handle):
            users = int(record["User Count"] or 0)
            if record["Name"] == "Aggregated" or users == 0:
                continue
            key = (record["Type"], record["Name"], users)
            total = int(record["Total Request Count"] or 0)
            levels.setdefault(key, []).append(
                (float(record["Timestamp"]), total, _number(record.get("95%")))
            )
    steps: list[dict[str, Any]] = []
    for (via, name, users), samples in sorted(levels.items()):
        (start, first, _), (end, last, _) = samples[0], samples[-1]
        if end - start < min_seconds:
            continue
        p95s = sorted(p for _, _, p in samples if p is not None)
        pool, _, kind = name.partition(":")
        steps.append(
            {
                "type": via, "name": name, "pool": pool, "kind": kind or None,
                "users": users, "seconds": end - start, "jobs": last - first,
                "jobs_per_s": (last - first) / (end - start),
                "p95_ms": p95s[len(p95s) // 2] if p95s else None,
                "saturated": False,
            }
        )  # fmt: skip
    marked: set[tuple[str, str]] = set()
    for previous, step in itertools.pairwise(steps):
        series = (str(step["type"]), str(step["name"]))
        if series in marked or (previous["type"], previous["name"]) != series:
            continue
        if step["jobs_per_s"] < previous["jobs_per_s"] * 1.1:
            step["saturated"] = True
            marked.add(series)
    return steps


def markdown_steps(steps: list[dict[str, Any]]) -> str:
    levels = sorted({step["users"] for step in steps})
    if len(levels) < 2:
        return ""
    names = sorted({(step["type"], step["name"]) for step in steps})
    by_key = {(s["type"], s["name"], s["users"]): s for s in steps}
    lines = [
        "## Jobs/s at each step (total users)",
        "",
        "A * marks the first step no more than 10 % above the one before: that pool's "
        "saturation point, past which more users only wait longer.",
        "",
        "| via | pool:kind | " + " | ".join(str(u) for u in levels) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in levels) + " |",
    ]
    for via, name in names:
        cells = []
        for users in levels:
            step = by_key.get((via, name, users))
            if step is None:
                cells.append("–")
            else:
                cells.append(f"{step['jobs_per_s']:.1f}" + (" *" if step["saturated"] else ""))
        lines.append(f"| {via} | {name} | " + " | ".join(cells) + " |")
    return "\n".join([*lines, ""]) + "\n"


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


TABLE_COLUMNS = (
    ("type", "via", 0),
    ("name", "pool:kind", 0),
    ("requests", "jobs", 0),
    ("failures", "failed", 0),
    ("rps", "jobs/s", 1),
    ("p50_ms", "p50 ms", 0),
    ("p95_ms", "p95 ms", 0),
    ("p99_ms", "p99 ms", 0),
    ("max_ms", "max ms", 0),
)


def markdown_table(rows: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    lines = [
        "# Load (Locust)",
        "",
        f"{summary['users']} users ({summary['shape']} shape), {summary['run_time_s']} s "
        f"against {summary['host']}; users: {', '.join(summary['user_classes'])}. "
        "Time is each job's end-to-end latency as the user saw it (send → result).",
        "",
        "| " + " | ".join(title for _, title, _ in TABLE_COLUMNS) + " |",
        "| " + " | ".join("---" if i < 2 else "---:" for i in range(len(TABLE_COLUMNS))) + " |",
    ]
    for row in sorted(rows, key=lambda r: (r["type"], r["name"])):
        cells = [_fmt(row[key], digits) for key, _, digits in TABLE_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Locust's own files: {', '.join(summary['files'].values())}.", ""]
    return "\n".join(lines)


def _print_rows(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Pool Lab load (Locust)")
    for index, (_, title, _) in enumerate(TABLE_COLUMNS):
        if index < 2:
            table.add_column(title, no_wrap=True)
        else:
            table.add_column(title, justify="right")
    for row in sorted(rows, key=lambda r: (r["type"], r["name"])):
        table.add_row(*(_fmt(row[key], digits) for key, _, digits in TABLE_COLUMNS))
    # a pipe or a CI log gets 80 columns from rich, too few for nine columns of figures
    console = Console()
    if not console.is_terminal:
        console = Console(width=110)
    console.print(table)
