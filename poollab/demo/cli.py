"""`poollab demo NAME... | all [--quick] [--out DIR] [--json] [--python PATH]`: run the talk's
experiments."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from poollab.cli import CliError
from poollab.demo import interpreters, registry
from poollab.demo.interpreters import AUTO

DEFAULT_OUT = Path("poollab-demo")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    listing = "\n".join(f"  {e.name:<22} {e.summary}" for e in registry.ENTRIES)
    parser = subparsers.add_parser(
        "demo",
        help="reproduce the talk's claims: measured tables, verdicts and charts",
        description=(
            "Run the experiments behind the talk's claims on this machine. Each prints a table "
            "of figures measured on the spot, a verdict (held / did not hold / skipped, or "
            "inconclusive when other programs took the CPU) and writes a PNG chart."
        ),
        epilog=f"experiments:\n{listing}\n  {'all':<22} every experiment above, in this order",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="experiment(s) to run, or 'all'")
    parser.add_argument(
        "--quick", action="store_true", help="smaller runs: under 10 s per experiment"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"directory for the PNG charts (default: {DEFAULT_OUT}/)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the results as JSON on stdout, no tables"
    )
    parser.add_argument("--no-chart", action="store_true", help="do not draw charts")
    parser.add_argument("--list", action="store_true", help="list the experiments and exit")
    parser.add_argument(
        "--python",
        default=AUTO,
        metavar="PATH",
        help=(
            "the Python that 'subinterpreters' and 'free-threading' run in (CPython 3.14, a "
            "free-threaded 3.13t/3.14t); default 'auto': this one if it can, else the CPython 3.14 "
            "that `poollab interpreters get 3.14` cached, else a python3.14t on PATH"
        ),
    )
    parser.set_defaults(func=run)


def resolve(names: list[str]) -> list[str]:
    """The experiments to run, in registry order for 'all', or a CliError naming the choices."""
    choices = ", ".join((*registry.NAMES, "all"))
    if not names:
        raise CliError(f"name an experiment to run: {choices}")
    unknown = [n for n in names if n != "all" and registry.get(n) is None]
    if unknown:
        raise CliError(
            f"unknown experiment {', '.join(map(repr, unknown))}; choose from: {choices}"
        )
    if "all" in names:
        return list(registry.NAMES)
    return list(dict.fromkeys(names))  # keep the order given, once each


def run(args: argparse.Namespace) -> int:
    if args.list:
        for entry in registry.ENTRIES:
            print(f"{entry.name:<22} {entry.summary}")
        return 0
    names = resolve(list(args.names))
    check_python(args.python)
    # imported here, so `--help`, `--list` and typos answer without loading rich or matplotlib
    from poollab.demo.report import Report

    report = Report(json_output=args.json, command=command_line(args))
    results = report.run(
        names, quick=args.quick, out_dir=args.out, charts=not args.no_chart, python=args.python
    )
    return report.exit_code(results)


def check_python(given: str) -> None:
    """Refuse a --python that is no interpreter before any experiment runs."""
    if given == AUTO:
        return
    try:
        interpreters.from_path(given)
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run, recorded with its results."""
    words = ["poollab", "demo", *args.names]
    words += ["--quick"] if args.quick else []
    words += ["--out", str(args.out)] if args.out != DEFAULT_OUT else []
    words += ["--json"] if args.json else []
    words += ["--no-chart"] if args.no_chart else []
    words += ["--python", args.python] if getattr(args, "python", AUTO) != AUTO else []
    return shlex.join(words)
