"""Running an aiohttp service the way every lab service runs: uvloop when asked, many sockets."""

from __future__ import annotations

import asyncio
import resource

from aiohttp import web


def raise_open_file_limit() -> None:
    """Thousands of concurrent connections need thousands of file descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run_service(app: web.Application, host: str, port: int, loop: str = "uvloop") -> None:
    """Serve until SIGTERM or SIGINT, then stop accepting and let in-flight requests finish."""
    raise_open_file_limit()
    web.run_app(
        app,
        host=host,
        port=port,
        backlog=4096,
        access_log=None,
        print=None,
        shutdown_timeout=10.0,
        loop=new_event_loop(loop),
    )
