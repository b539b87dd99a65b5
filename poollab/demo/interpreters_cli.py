"""`poollab interpreters get 3.14 | list`: the other Pythons `poollab demo` can run in."""

from __future__ import annotations

import argparse
import json
import time

from poollab.cli import CliError
from poollab.demo import interpreters
from poollab.demo.subproc import ChildError

VERSIONS = ("3.14",)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "interpreters",
        help="get and list the Pythons the sub-interpreter and free-threading demos run in",
        description=(
            "`get 3.14` builds a minimal Debian testing ('forky') root with CPython 3.14 in "
            f"the cache ({interpreters.forky_root()}; $POOLLAB_CACHE_DIR moves it), once: "
            "root, debootstrap and 30-100 s. `poollab demo subinterpreters` then finds it by "
            "itself. `list` shows what each demo would run in."
        ),
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    get = actions.add_parser("get", help="build (once) and cache an interpreter")
    get.add_argument("version", metavar="VERSION", help=f"one of: {', '.join(VERSIONS)}")
    get.add_argument("--mirror", help="Debian mirror URL (default: the one apt uses here)")
    get.add_argument("--rebuild", action="store_true", help="build again even when cached")
    get.set_defaults(func=run_get)
    listing = actions.add_parser("list", help="the interpreters the demos would use")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=run_list)


def run_get(args: argparse.Namespace) -> int:
    if args.version.endswith("t"):
        raise CliError(
            f"no Debian release packages a free-threaded build ({args.version}): "
            + interpreters.FREE_THREADED_HOWTO
        )
    if args.version not in VERSIONS:
        raise CliError(f"unknown version {args.version!r}; choose from: {', '.join(VERSIONS)}")
    # imported here: rich only for this command
    from rich.console import Console

    from poollab.demo import forky

    console = Console(stderr=True)
    start = time.monotonic()
    try:
        with console.status(f"building the CPython {args.version} root") as status:

            def show(line: str) -> None:
                status.update(f"[{time.monotonic() - start:4.0f} s] debootstrap: {line[:90]}")

            built = forky.get(mirror_url=args.mirror, rebuild=args.rebuild, on_line=show)
    except (forky.BuildError, ChildError) as exc:
        raise CliError(str(exc)) from exc
    what = "cached already" if built.cached else f"built in {built.seconds:.0f} s"
    console.print(f"CPython {built.version} {what}: {built.interpreter.label()}", soft_wrap=True)
    console.print(
        "`poollab demo subinterpreters` finds it by itself; to name it: "
        f"--python {built.interpreter.path}",
        soft_wrap=True,
    )
    print(built.interpreter.path)
    return 0


def run_list(args: argparse.Namespace) -> int:
    found = []
    for demo, choose in (
        ("subinterpreters", interpreters.for_subinterpreters),
        ("free-threading", interpreters.for_free_threading),
    ):
        interpreter, how = choose(interpreters.AUTO)
        entry: dict[str, object] = {"demo": demo, "how": how}
        if interpreter is not None:
            entry["path"] = str(interpreter.path)
            entry["run_as"] = interpreter.label()
            try:
                entry["build"] = interpreters.build_of(interpreter.describe())
            except ChildError as exc:
                entry["error"] = str(exc)
        found.append(entry)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    for entry in found:
        if "path" not in entry:
            print(f"{entry['demo']:<16} none: {entry['how']}")
            continue
        state = entry.get("build", entry.get("error"))
        print(f"{entry['demo']:<16} {entry['run_as']} ({state}; {entry['how']})")
    return 0
