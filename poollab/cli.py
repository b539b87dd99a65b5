"""The `poollab` command: one entry point, a subcommand per job.

Each subcommand lives in the module that does its work and registers itself
through an ``add_parser(subparsers)`` function, so this file only wires them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# module path of every subcommand's ``add_parser``; imported lazily so that
# `poollab demo` never pays for Celery and `poollab up` never for matplotlib.
SUBCOMMANDS: dict[str, str] = {
    "up": "poollab.launcher.cli",
    "status": "poollab.launcher.cli",
    "submit": "poollab.producer.cli",
    "bench": "poollab.measure.bench.cli",
    "load": "poollab.measure.load",
    "demo": "poollab.demo.cli",
    "interpreters": "poollab.demo.interpreters_cli",
    "serve": "poollab.services.cli",
    "consume": "poollab.consumer.cli",
    "soak": "poollab.measure.soak",
}


class CliError(Exception):
    """A problem the user can fix: printed without a traceback, exit status 2."""


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="poollab",
        description="Compare Celery pools and an asyncio consumer: throughput, latency, memory.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = next((arg for arg in argv if not arg.startswith("-")), None)
    modules: dict[str, list[str]] = {}
    for name, module_path in SUBCOMMANDS.items():
        modules.setdefault(module_path, []).append(name)
    for module_path, names in modules.items():
        if wanted is not None and wanted not in names:
            # only the chosen subcommand's module is imported; the others get a
            # placeholder so that --help still lists them
            for name in names:
                subparsers.add_parser(name)
            continue
        importlib.import_module(module_path).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    try:
        result: int | None = args.func(args)
    except CliError as exc:
        print(f"poollab {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0 if result is None else result


if __name__ == "__main__":
    sys.exit(main())
