"""Clients of the slow echo server (:mod:`poollab.demo.slow_server`): one line out, one back."""

from __future__ import annotations

import asyncio
import socket

from poollab.demo.loopback import HOST

REQUEST = b"ping\n"


def blocking_request(port: int, timeout: float) -> bytes:
    """One request on a blocking socket: ``recv`` waits, and the thread with it."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(REQUEST)
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        return answer


async def async_request(port: int) -> bytes:
    """The same request on asyncio streams: while it waits, the loop runs everything else."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(REQUEST)
        await writer.drain()
        return await reader.readline()
    finally:
        writer.close()
        await writer.wait_closed()


def nonblocking_recv_error() -> str:
    """What ``recv`` on a non-blocking socket with no data waiting does: it raises."""
    left, right = socket.socketpair()
    try:
        left.setblocking(False)
        try:
            left.recv(1)
        except BlockingIOError as exc:
            return f"{type(exc).__name__}: {exc.strerror}"
        return "returned without raising"
    finally:
        left.close()
        right.close()
