"""Loopback-only sockets for the demos: nothing they start listens beyond 127.0.0.1."""

from __future__ import annotations

import socket

HOST = "127.0.0.1"


def listening_socket(backlog: int = 512) -> socket.socket:
    """A TCP socket on 127.0.0.1 with a port the kernel picked, already listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(backlog)
    return sock


def port_of(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port
