"""Consumers as real subprocesses, an upstream for I/O jobs, and a plain Celery client."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import redis
from celery import Celery

from poollab.celery_config import make_celery
from poollab.hooks.liveness import is_alive
from poollab.launcher.redis_server import RedisServer, free_port
from poollab.settings import Settings

START_TIMEOUT_S = 30.0


@dataclass
class ConsumerProcess:
    """One ``python -m poollab.consumer`` child, its log, and the processes it started."""

    nodename: str
    settings: Settings
    process: subprocess.Popen[bytes]
    log_path: Path
    _children: list[psutil.Process] = field(default_factory=list)

    def wait_alive(self, timeout_s: float = START_TIMEOUT_S) -> ConsumerProcess:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"consumer exited {self.process.returncode}:\n{self.log()}")
            if is_alive(self.settings, self.nodename):
                return self
            time.sleep(0.05)
        raise AssertionError(f"consumer not alive after {timeout_s}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _remember_children(self) -> None:
        try:
            self._children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            self._children = []

    def terminate(self) -> None:
        self._remember_children()
        self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would: nothing runs on the way out."""
        self._remember_children()
        self.process.kill()
        self.process.wait(10)
        self._reap_children()

    def wait(self, timeout_s: float) -> int:
        return self.process.wait(timeout_s)

    def _reap_children(self) -> None:
        for child in self._children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reap_children()


ConsumerFactory = Callable[..., ConsumerProcess]


def spawn_consumer(
    env: dict[str, str], log_path: Path, *args: str, nodename: str = "asyncio@test"
) -> ConsumerProcess:
    """``python -m poollab.consumer`` with this environment, its output in ``log_path``."""
    argv = [sys.executable, "-m", "poollab.consumer", "-n", nodename, "--loop", "asyncio", *args]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    settings = Settings(broker_url=env["POOLLAB_BROKER_URL"])
    return ConsumerProcess(nodename, settings, process, log_path)


@contextlib.contextmanager
def module_consumer(
    shared_db: str, upstream_url: str, log_dir: Path, *args: str, nodename: str
) -> Iterator[ConsumerProcess]:
    """One consumer on the module's shared database for a whole test module, then stopped."""
    process = spawn_consumer(
        module_env(shared_db, upstream_url), log_dir / "consumer.log", *args, nodename=nodename
    )
    try:
        yield process.wait_alive()
    finally:
        process.stop()


@pytest.fixture(scope="module")
def app(consumer: ConsumerProcess) -> Iterator[Celery]:
    """A Celery client of the module's ``consumer`` (a fixture each module defines)."""
    client = celery_client(consumer.settings.broker_url)
    yield client
    client.close()


@pytest.fixture
def start_consumer(tmp_path: Path) -> Iterator[ConsumerFactory]:
    """Start consumers: ``start_consumer(env, *args, nodename=...)``; all stopped after."""
    started: list[ConsumerProcess] = []

    def start(
        env: dict[str, str], *args: str, nodename: str = "asyncio@test", wait: bool = True
    ) -> ConsumerProcess:
        log_path = tmp_path / f"consumer-{len(started)}.log"
        consumer = spawn_consumer(env, log_path, *args, nodename=nodename)
        started.append(consumer)
        return consumer.wait_alive() if wait else consumer

    yield start
    for consumer in started:
        consumer.stop()


def _wait_http(url: str, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=0.5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not answer within {timeout_s}s")


@pytest.fixture(scope="session")
def upstream_url() -> Iterator[str]:
    """``poollab serve upstream`` on a free loopback port, for the whole session."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "poollab.cli",
            "serve",
            "upstream",
            "--port",
            str(port),
            "--loop",
            "asyncio",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/healthz")
        yield url
    finally:
        process.terminate()
        process.wait(15)


@pytest.fixture
def consumer_env(lab_env: dict[str, str], upstream_url: str) -> dict[str, str]:
    return {**lab_env, "POOLLAB_UPSTREAM_URL": upstream_url}


def celery_client(broker_url: str) -> Celery:
    """A plain Celery client configured as the lab's workers are; it knows no task code."""
    return make_celery("consumer-tests", settings=Settings(broker_url=broker_url))


@pytest.fixture
def client(redis_url: str) -> Iterator[Celery]:
    app = celery_client(redis_url)
    yield app
    app.close()


@pytest.fixture(scope="module")
def shared_db(redis_server: RedisServer) -> Iterator[str]:
    """A database of the tests' Redis for one module's long-lived consumer, emptied after."""
    url = redis_server.url + "/2"
    yield url
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def module_env(broker_url: str, upstream: str) -> dict[str, str]:
    return {
        **os.environ,
        "POOLLAB_BROKER_URL": broker_url,
        "POOLLAB_UPSTREAM_URL": upstream,
        "POOLLAB_RESULT_BACKEND": "",
    }
