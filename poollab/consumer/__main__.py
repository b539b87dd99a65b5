"""``python -m poollab.consumer``: the same as ``poollab consume``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from poollab.consumer.cli import configure


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m poollab.consumer")
    configure(parser)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
