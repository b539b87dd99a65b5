"""Workloads for the event-loop comparison: echo over asyncio streams, and HTTP with aiohttp.

Client and server share one loop, so the loop's own overhead is what the figures compare.
Every client stops at its round-trip count or at the deadline, whichever comes first.
"""

from __future__ import annotations

import asyncio
import time
from typing import cast

import aiohttp
from aiohttp import web

from poollab.demo.loopback import HOST, listening_socket, port_of

MESSAGE = b"x" * 64


async def echo_streams(clients: int, round_trips: int, seconds: float) -> int:
    """Round trips completed by ``clients`` stream connections, each doing up to ``round_trips``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(4096):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    sock = listening_socket()
    server = await asyncio.start_server(handle, sock=sock)
    port = port_of(sock)
    stop_at = time.monotonic() + seconds

    async def client() -> int:
        reader, writer = await asyncio.open_connection(HOST, port)
        done = 0
        try:
            while done < round_trips and time.monotonic() < stop_at:
                writer.write(MESSAGE)
                await reader.readexactly(len(MESSAGE))
                done += 1
        finally:
            writer.close()
            await writer.wait_closed()
        return done

    async with server:
        counts = await asyncio.gather(*(client() for _ in range(clients)))
    return sum(counts)


class _EchoServer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class _EchoClient(asyncio.Protocol):
    """Sends a message, waits for all of it to come back, sends the next one."""

    def __init__(self, round_trips: int, stop_at: float, done: asyncio.Future[int]) -> None:
        self.round_trips = round_trips
        self.stop_at = stop_at
        self.done = done
        self.count = 0
        self.pending = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)
        self._send()

    def data_received(self, data: bytes) -> None:
        self.pending -= len(data)
        if self.pending > 0:
            return
        self.count += 1
        if self.count < self.round_trips and time.monotonic() < self.stop_at:
            self._send()
        else:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(self.count)

    def _send(self) -> None:
        self.pending = len(MESSAGE)
        self.transport.write(MESSAGE)


async def echo_protocol(clients: int, round_trips: int, seconds: float) -> int:
    """The same echo with asyncio.Protocol callbacks: less Python per message than streams,
    so more of the time is the event loop's own."""
    loop = asyncio.get_running_loop()
    sock = listening_socket()
    server = await loop.create_server(_EchoServer, sock=sock)
    port = port_of(sock)
    stop_at = time.monotonic() + seconds

    async def client() -> int:
        done: asyncio.Future[int] = loop.create_future()
        await loop.create_connection(lambda: _EchoClient(round_trips, stop_at, done), HOST, port)
        return await done

    async with server:
        counts = await asyncio.gather(*(client() for _ in range(clients)))
    return sum(counts)


async def http(clients: int, requests: int, seconds: float) -> int:
    """HTTP GETs completed by ``clients`` concurrent aiohttp clients, each up to ``requests``."""

    async def hello(_: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = listening_socket()
    await web.SockSite(runner, sock).start()
    url = f"http://{HOST}:{port_of(sock)}/"
    stop_at = time.monotonic() + seconds
    try:
        connector = aiohttp.TCPConnector(limit=clients)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def client() -> int:
                done = 0
                while done < requests and time.monotonic() < stop_at:
                    async with session.get(url) as response:
                        await response.read()
                    done += 1
                return done

            counts = await asyncio.gather(*(client() for _ in range(clients)))
    finally:
        await runner.cleanup()
    return sum(counts)
