"""``python -m poollab.measure.claims render [--check] | run NAME... | all [--quick]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from poollab.demo import registry
from poollab.measure.claims import render, run
from poollab.measure.claims.blocks import BlockError
from poollab.measure.claims.paths import ROOT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m poollab.measure.claims",
        description="The docs' generated tables, from the committed runs under docs/results/.",
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository's root")
    sub = parser.add_subparsers(dest="command", required=True)
    rendering = sub.add_parser("render", help="rewrite the docs' generated blocks")
    rendering.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 with a diff if out of date"
    )
    running = sub.add_parser("run", help="re-run measurements and write their summaries")
    running.add_argument(
        "names",
        nargs="+",
        metavar="NAME",
        help=f"{', '.join(run.RUNNERS)}, all, or talk:EXPERIMENT ({', '.join(registry.NAMES)})",
    )
    running.add_argument("--quick", action="store_true", help="small sizes (minutes, not an hour)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    root: Path = args.root
    if args.command == "run":
        return _run(root, list(args.names), args.quick)
    try:
        outcomes = render.render(root)
    except (BlockError, render.SourceError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    stale = [o for o in outcomes if o.changed]
    if args.check:
        for outcome in stale:
            sys.stdout.write(outcome.diff())
        if stale:
            print(
                f"out of date: {', '.join(map(str, (o.doc for o in stale)))}; "
                "run: python -m poollab.measure.claims render",
                file=sys.stderr,
            )
        return 1 if stale else 0
    for outcome in stale:
        (root / outcome.doc).write_text(outcome.new)
        print(f"rendered {outcome.doc}")
    return 0


def _run(root: Path, names: list[str], quick: bool) -> int:
    experiments = [n.removeprefix("talk:") for n in names if n.startswith("talk:")]
    plain = [n for n in names if not n.startswith("talk:")]
    unknown = [n for n in plain if n != "all" and n not in run.RUNNERS]
    unknown += [n for n in experiments if registry.get(n) is None]
    if unknown:
        choices = ", ".join([*run.RUNNERS, "all", *(f"talk:{n}" for n in registry.NAMES)])
        print(f"error: unknown run {', '.join(map(repr, unknown))}; choose from: {choices}",
              file=sys.stderr)  # fmt: skip
        return 2
    failed = []
    if experiments:
        try:
            run.run_talk(root, quick, experiments)
        except RuntimeError as error:
            print(f"error: {error}", file=sys.stderr)
            failed.append("talk")
    if plain:
        failed += run.run(root, plain, quick)
    if failed:
        print(f"failed: {', '.join(failed)}; their committed files are unchanged", file=sys.stderr)
        return 1
    print("now: python -m poollab.measure.claims render", file=sys.stderr)
    return 0
