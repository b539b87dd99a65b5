"""``poollab serve SERVICE``: run one of the lab's HTTP services in the foreground."""

from __future__ import annotations

import argparse
from typing import Any

from poollab.settings import get_settings


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run one lab service in the foreground (upstream, producer, collector)",
        description="Run one of the lab's HTTP services until SIGTERM or Ctrl-C.",
    )
    parser.add_argument("service", choices=["upstream", "producer", "collector"])
    parser.add_argument("--host", help="address to bind (default: from settings)")
    parser.add_argument("--port", type=int, help="port (default: from settings)")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from poollab.services.run import run_service

    settings = get_settings()
    if args.service == "collector":
        from poollab.services.collector import app as collector

        collector.serve(args.host, args.port, args.loop)
    elif args.service == "upstream":
        from poollab.services import upstream

        run_service(
            upstream.create_app(),
            args.host or settings.upstream_host,
            args.port or settings.upstream_port,
            args.loop,
        )
    else:
        from poollab.producer import app as producer

        run_service(
            producer.create_app(settings),
            args.host or settings.producer_host,
            args.port or settings.producer_port,
            args.loop,
        )
    return 0
