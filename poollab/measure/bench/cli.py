"""``poollab bench``: run the comparison matrix on a local lab, write results and the report."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from poollab.cli import CliError
from poollab.measure.bench.config import (
    MODES,
    WORKLOADS,
    BenchConfig,
    ConfigError,
    UserWorkload,
    default_out_dir,
    parse_levels,
    parse_list,
)
from poollab.measure.bench.profiles import PROFILES
from poollab.stopping import StopSignals

if TYPE_CHECKING:
    from poollab.measure.bench.results import BenchRun


@dataclass(frozen=True)
class Defaults:
    """The values of the options ``--quick`` changes, for a full run and for a quick one.

    These options default to None on the command line, so that a value the user gave (even
    one equal to a default) is told apart from one left out, and ``--quick`` fills in only
    the ones left out.
    """

    workloads: tuple[str, ...]
    profiles: tuple[str, ...]
    cell_s: float
    # --quick keeps its time: a busy machine is reported, not waited out
    retries: int


FULL = Defaults(workloads=WORKLOADS, profiles=("defaults", "tuned"), cell_s=3.0, retries=1)
QUICK = Defaults(workloads=("noop", "cpu", "io"), profiles=("tuned",), cell_s=1.0, retries=0)


BENCH_DESCRIPTION = """\
Start a local lab (the Redis POOLLAB_BROKER_URL names, else an embedded one of its own; the
upstream; one consumer at a time) and run pools × workloads ×
concurrency × modes × profiles, each cell after a warm-up. Writes results.json, report.md,
report.html and charts to --out, and prints the summary.
"""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="compare the pools: throughput, latency, memory (writes a report)",
        description=BENCH_DESCRIPTION,
    )
    parser.add_argument("--pools", help="comma-separated (default: every pool)")
    parser.add_argument(
        "--workloads",
        help=f"comma-separated: {', '.join(WORKLOADS)} "
        f"(default: all; --quick: {', '.join(QUICK.workloads)})",
    )
    parser.add_argument(
        "--concurrency",
        help="levels: '2,16' for every pool but solo, 'gevent=100:500' for one pool "
        "(default: each pool's POOLLAB_CONCURRENCY_<POOL>)",
    )
    parser.add_argument("--modes", default=",".join(MODES), help="drain, live or both")
    parser.add_argument(
        "--profiles",
        help=f"settings profiles: {', '.join(PROFILES)} "
        f"(default: {','.join(FULL.profiles)}; --quick: {','.join(QUICK.profiles)})",
    )
    parser.add_argument("--jobs", type=int, help="jobs per cell (default: ~--cell-s of work)")
    parser.add_argument(
        "--cell-s",
        type=float,
        help=f"seconds a cell aims at (default {FULL.cell_s:g}; --quick {QUICK.cell_s:g})",
    )
    parser.add_argument("--io-latency-ms", type=int, default=50, help="sleep/io jobs' latency")
    parser.add_argument("--cpu-n", type=int, default=100_000, help="cpu jobs' steps")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each cell (median kept)")
    parser.add_argument(
        "--sample-interval-s", type=float, default=0.25, help="resource samples (≤ 1 s)"
    )
    parser.add_argument(
        "--busy-cores",
        type=float,
        default=0.35,
        help="run a cell again when other processes used more cores than this meanwhile",
    )
    parser.add_argument(
        "--retries",
        type=int,
        help=f"times a disturbed cell runs again (default {FULL.retries}; --quick {QUICK.retries})",
    )
    parser.add_argument(
        "--quiet-wait-s",
        type=float,
        default=0.0,
        help="before each cell, wait up to this long for other work to drop below --busy-cores",
    )
    parser.add_argument(
        "--job",
        metavar="MODULE:FUNCTION",
        help="your own callable (plain or async def, importable from the current directory) "
        "as the workloads, through every pool; with --workloads, beside those",
    )
    parser.add_argument(
        "--params",
        metavar="JSON",
        help="--job's keyword arguments, a JSON object (default {}), e.g. '{\"size\": 1024}'",
    )
    parser.add_argument(
        "--params-file",
        type=Path,
        metavar="FILE",
        help="a JSON list of objects: each parameter set of --job is a workload of its own",
    )
    parser.add_argument("--out", type=Path, help="directory (default: poollab-results/<time>)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="every pool at its default concurrency on noop, cpu and io, tuned profile, "
        "short cells (~2-3 minutes on 2 cores)",
    )
    parser.add_argument(
        "--report-from",
        type=Path,
        metavar="RESULTS_JSON",
        help="only (re)write the report of an earlier run",
    )
    parser.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> BenchConfig:
    from poollab.settings import ALL_POOLS, get_settings

    defaults = QUICK if args.quick else FULL
    cell_s = defaults.cell_s if args.cell_s is None else args.cell_s
    retries = defaults.retries if args.retries is None else args.retries
    try:
        pools = parse_list(args.pools, ALL_POOLS, "--pools") if args.pools else ALL_POOLS
        user_jobs = _user_jobs(args)
        # --job replaces the built-in workloads unless --workloads asks for some too
        workloads: tuple[str, ...] = () if user_jobs else defaults.workloads
        if args.workloads is not None:
            workloads = parse_list(args.workloads, WORKLOADS, "--workloads")
        workloads += tuple(w.name for w in user_jobs)
        modes = parse_list(args.modes, MODES, "--modes")
        profiles = (
            parse_list(args.profiles, tuple(PROFILES), "--profiles")
            if args.profiles is not None
            else defaults.profiles
        )
        levels = parse_levels(args.concurrency, pools, get_settings())  # type: ignore[arg-type]
        numbers = {
            "--jobs": (args.jobs, 1, 1_000_000),
            "--cell-s": (cell_s, 0.2, 600),
            "--io-latency-ms": (args.io_latency_ms, 0, 60_000),
            "--cpu-n": (args.cpu_n, 1, 50_000_000),
            "--repeat": (args.repeat, 1, 100),
            "--sample-interval-s": (args.sample_interval_s, 0.05, 1.0),
            "--busy-cores": (args.busy_cores, 0.0, 1024.0),
            "--retries": (retries, 0, 10),
            "--quiet-wait-s": (args.quiet_wait_s, 0.0, 3600.0),
        }
        for option, (value, low, high) in numbers.items():
            if value is not None and not low <= value <= high:
                raise ConfigError(f"{option}: must be between {low} and {high}")
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    return BenchConfig(
        pools=pools,  # type: ignore[arg-type]
        workloads=workloads,
        levels=levels,
        modes=modes,  # type: ignore[arg-type]
        profiles=profiles,
        jobs=args.jobs,
        cell_s=cell_s,
        io_latency_ms=args.io_latency_ms,
        cpu_n=args.cpu_n,
        repeat=args.repeat,
        sample_interval_s=args.sample_interval_s,
        busy_cores=args.busy_cores,
        retries=retries,
        quiet_wait_s=args.quiet_wait_s,
        out=args.out or default_out_dir(),
        quick=args.quick,
        user_jobs=user_jobs,
    )


def _user_jobs(args: argparse.Namespace) -> tuple[UserWorkload, ...]:
    """--job checked before anything starts: it imports, it is callable, it takes each
    parameter set (ConfigError otherwise)."""
    from poollab.measure.bench.userjob import load_user_workloads, read_param_sets

    if args.job is None:
        if args.params is not None or args.params_file is not None:
            raise ConfigError("--params and --params-file go with --job MODULE:FUNCTION")
        return ()
    return load_user_workloads(args.job, read_param_sets(args.params, args.params_file))


def run(args: argparse.Namespace) -> int:
    from poollab.measure.bench.lab import BenchError
    from poollab.measure.bench.results import load_results
    from poollab.measure.bench.runner import run_bench
    from poollab.measure.bench.table import print_summary

    console = Console(stderr=True)
    if args.report_from is not None:
        try:
            finished = load_results(args.report_from)
        except (OSError, ValueError) as exc:
            raise CliError(str(exc)) from None
        out = args.report_from.parent
    else:
        config = build_config(args)
        console.print(f"results go to [bold]{config.out}[/]")
        # SIGTERM stops the run like Ctrl-C: the lab's processes are stopped, not orphaned
        try:
            with StopSignals((signal.SIGTERM,), raise_as=KeyboardInterrupt):
                finished = run_bench(config, dict(os.environ), console, command=sys.argv)
        except BenchError as exc:
            raise CliError(str(exc)) from None
        out = config.out
    stdout = Console()
    # a pipe or a log gets a width that fits the table, not the 80 columns rich assumes
    print_summary(finished, stdout if stdout.is_terminal else Console(width=120))
    written = write_reports(finished, out)
    console.print(f"wrote {', '.join(str(p) for p in written)}")
    return 130 if finished.interrupted else 0


def write_reports(run: BenchRun, out: Path) -> list[Path]:
    from poollab.measure.bench.report import write_report

    return [out / "results.json", *write_report(run, out)]
