"""Fixtures shared by every test: a real Redis of the tests' own, never one with others' keys."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from poollab.launcher.lab import Lab
from poollab.launcher.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of the tests' own, on a free loopback port, for the whole session."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """Database 0 of the tests' own Redis, emptied after each test that uses it."""
    url = redis_server.url + "/0"
    yield url
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


@pytest.fixture
def lab_env(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Environment for lab processes, also applied to the settings read in this process."""
    from poollab.settings import get_settings

    monkeypatch.setenv("POOLLAB_BROKER_URL", redis_url)
    get_settings.cache_clear()
    yield {**os.environ, "POOLLAB_BROKER_URL": redis_url}
    get_settings.cache_clear()


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held open together so none is handed out twice)."""
    import socket

    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def service_env(broker_url: str) -> dict[str, str]:
    """POOLLAB_* variables that put a lab on this broker and on free ports."""
    producer, upstream, flower, collector = free_ports(4)
    return {
        "POOLLAB_BROKER_URL": broker_url,
        "POOLLAB_PRODUCER_PORT": str(producer),
        "POOLLAB_UPSTREAM_PORT": str(upstream),
        "POOLLAB_UPSTREAM_URL": f"http://127.0.0.1:{upstream}",
        "POOLLAB_FLOWER_PORT": str(flower),
        "POOLLAB_COLLECTOR_PORT": str(collector),
    }


@pytest.fixture(scope="session")
def running_lab(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lab]:
    """Upstream, producer and a worker per pool as real processes on the tests' Redis (db 1).

    Shared by the tests that only send jobs and read results, so workers start once.
    """
    import socket

    from poollab.launcher.lab import Lab
    from poollab.launcher.topology import build_services
    from poollab.settings import ALL_POOLS, Settings

    env = {**os.environ, **service_env(redis_server.url + "/1")}
    pools = ALL_POOLS
    settings = Settings(
        **{
            k.removeprefix("POOLLAB_").lower(): v
            for k, v in env.items()
            if k.startswith("POOLLAB_")
        }
    )
    lab = Lab(settings, env, tmp_path_factory.mktemp("lab"))
    services = build_services(
        settings, socket.gethostname(), pools, with_flower=False, with_collector=False
    )
    lab.start(services, timeout_s=90)
    try:
        yield lab
    finally:
        lab.stop()
