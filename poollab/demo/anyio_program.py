"""One AnyIO program, written once and run unchanged on asyncio, uvloop and trio.

A task group of sleepers, a loopback TCP echo exchange (server and clients in the same
program) and async file reads (``anyio.Path``): nothing in it names a backend.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.abc import SocketStream

from poollab.demo.loopback import HOST

MESSAGE = b"x" * 64


@dataclass(frozen=True)
class Sizes:
    sleepers: int
    sleep_s: float
    clients: int
    round_trips: int
    files: list[Path]


@dataclass
class Outcome:
    """What the program computed (must agree across backends) and how long each part took."""

    slept: int = 0
    echoed: int = 0
    digest: str = ""
    sleep_s: float = 0.0
    echo_s: float = 0.0
    files_s: float = 0.0


async def program(sizes: Sizes) -> Outcome:
    outcome = Outcome()
    start = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(sizes.sleepers):
            group.start_soon(_sleeper, sizes.sleep_s, outcome)
    outcome.sleep_s = time.perf_counter() - start

    start = time.perf_counter()
    await _echo(sizes, outcome)
    outcome.echo_s = time.perf_counter() - start

    start = time.perf_counter()
    outcome.digest = await read_all(sizes.files)
    outcome.files_s = time.perf_counter() - start
    return outcome


async def _sleeper(seconds: float, outcome: Outcome) -> None:
    await anyio.sleep(seconds)
    outcome.slept += 1


async def _echo(sizes: Sizes, outcome: Outcome) -> None:
    listener = await anyio.create_tcp_listener(local_host=HOST)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def serve(stream: SocketStream) -> None:
        async with stream:
            async for chunk in stream:
                await stream.send(chunk)

    async def client() -> None:
        async with await anyio.connect_tcp(HOST, port) as stream:
            for _ in range(sizes.round_trips):
                await stream.send(MESSAGE)
                received = b""
                while len(received) < len(MESSAGE):
                    received += await stream.receive()
                outcome.echoed += 1

    async with listener, anyio.create_task_group() as server:
        server.start_soon(listener.serve, serve)
        async with anyio.create_task_group() as clients:
            for _ in range(sizes.clients):
                clients.start_soon(client)
        server.cancel_scope.cancel()


async def read_all(files: list[Path]) -> str:
    """Every file read with AnyIO's async file I/O (worker threads), hashed in order."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(await anyio.Path(path).read_bytes())
    return digest.hexdigest()


async def read_sizes(files: list[Path]) -> int:
    """Bytes in every file, read with ``anyio.Path``: each read in a worker thread."""
    return sum([len(await anyio.Path(path).read_bytes()) for path in files])


def read_sizes_blocking(files: list[Path]) -> int:
    """The same reads as plain blocking calls: inside a coroutine they stop the loop."""
    return sum(len(path.read_bytes()) for path in files)
