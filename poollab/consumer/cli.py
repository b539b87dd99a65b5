"""``poollab consume``: run the asyncio consumer in the foreground, or check one is alive."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
from collections.abc import Callable
from typing import Any

from poollab.consumer.config import CPU_EXECUTORS
from poollab.settings import get_settings

DEFAULT_NODENAME = "asyncio@%h"


CONSUME_DESCRIPTION = """\
Take Celery messages from a queue on the broker, run the async variant of each job on one
event loop and store results where Celery's result backend reads them. Stops on SIGTERM:
running jobs get --grace-s seconds, the rest go back.
"""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "consume",
        help="run the asyncio consumer (a Celery-protocol worker on one event loop)",
        description=CONSUME_DESCRIPTION,
    )
    configure(parser)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--concurrency", type=int, default=None,
        help="jobs running at once (default: POOLLAB_CONCURRENCY_ASYNCIO)",
    )  # fmt: skip
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    parser.add_argument(
        "-Q", "--queue", default="asyncio", help="queue to consume (default: asyncio)"
    )
    parser.add_argument(
        "-n", "--hostname", dest="nodename", default=DEFAULT_NODENAME,
        help="node name, Celery style: %%h is the host name (default: asyncio@%%h)",
    )  # fmt: skip
    parser.add_argument(
        "--cpu-executor", choices=CPU_EXECUTORS, default="process",
        help="where CPU-bound job steps run (default: a process pool)",
    )  # fmt: skip
    parser.add_argument("--cpu-workers", type=int, default=None, help="size of the CPU pool")
    parser.add_argument(
        "--grace-s", type=float, default=30.0,
        help="seconds running jobs get to finish after SIGTERM (default: 30)",
    )  # fmt: skip
    parser.add_argument(
        "--healthcheck", action="store_true",
        help="exit 0 if a consumer of this node name is alive, 1 otherwise",
    )  # fmt: skip
    parser.add_argument("-l", "--loglevel", default="INFO")
    parser.set_defaults(func=run)


def expand_nodename(name: str) -> str:
    """Celery's node name expansion (%h, %n, %d); a bare name gets ``@<host>``."""
    from celery.utils.nodenames import host_format

    if "@" not in name:
        name = f"{name}@%h"
    return str(host_format(name, host=socket.gethostname()))


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    nodename = expand_nodename(args.nodename)
    if args.healthcheck:
        from poollab.hooks.liveness import is_alive

        return 0 if is_alive(settings, nodename) else 1
    logging.basicConfig(
        level=args.loglevel.upper(),
        format="[%(asctime)s: %(levelname)s/%(name)s] %(message)s",
    )
    from poollab.consumer.config import ConsumerConfig
    from poollab.consumer.consumer import Consumer
    from poollab.services.run import raise_open_file_limit

    concurrency = args.concurrency or settings.concurrency_asyncio
    if concurrency < 1:
        raise SystemExit("poollab consume: -c must be at least 1")
    config = ConsumerConfig(
        nodename=nodename,
        queue=args.queue,
        concurrency=concurrency,
        loop=args.loop,
        cpu_executor=args.cpu_executor,
        cpu_workers=args.cpu_workers,
        grace_s=args.grace_s,
    )
    raise_open_file_limit()

    async def main() -> int:
        consumer = Consumer(config, settings)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, consumer.stop)
        await consumer.run()
        # a background task failed for good: non-zero, so that a supervisor restarts it
        return 0 if consumer.failure is None else 1

    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        return runner.run(main())


def loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop
