"""The key layout agrees with kombu's own methods, called on a stand-in channel."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from kombu.transport.redis import PRIORITY_STEPS
from kombu.transport.redis import Channel as RedisChannel

from poollab.consumer import layout


def _channel(db: int = 0) -> SimpleNamespace:
    channel = SimpleNamespace(
        priority_steps=PRIORITY_STEPS,
        sep=RedisChannel.sep,
        keyprefix_fanout=RedisChannel.keyprefix_fanout.format(db=db),
        fanout_patterns=True,
        min_priority=RedisChannel.min_priority,
        max_priority=RedisChannel.max_priority,
        default_priority=RedisChannel.default_priority,
    )
    channel.priority = lambda n: RedisChannel.priority(channel, n)
    return channel


@pytest.mark.parametrize("priority", range(0, 12))
def test_queue_key_is_kombus_q_for_pri(priority: int) -> None:
    assert layout.queue_key("asyncio", priority) == RedisChannel._q_for_pri(
        _channel(), "asyncio", priority
    )


def test_queue_keys_are_in_kombus_brpop_order() -> None:
    channel = _channel()
    expected = [RedisChannel._q_for_pri(channel, "asyncio", pri) for pri in PRIORITY_STEPS]
    assert layout.queue_keys("asyncio") == expected
    assert expected[0] == "asyncio"


@pytest.mark.parametrize(
    "payload",
    [
        {"properties": {"priority": 7}},
        {"properties": {"priority": 42}},
        {"properties": {"priority": -3}},
        {"properties": {"priority": "x"}},
        {"properties": {}},
        {},
    ],
)
def test_message_priority_is_kombus(payload: dict[str, object]) -> None:
    assert layout.message_priority(payload) == RedisChannel._get_message_priority(
        _channel(), payload
    )


def test_event_topic_is_kombus_fanout_topic() -> None:
    expected = RedisChannel._get_publish_topic(_channel(3), "celeryev", "worker.heartbeat")
    assert layout.event_topic(3, "worker.heartbeat") == expected == "/3.celeryev/worker.heartbeat"


@pytest.mark.parametrize(
    ("url", "db"),
    [
        ("redis://127.0.0.1:6379/0", 0),
        ("redis://127.0.0.1:6379/5", 5),
        ("redis://127.0.0.1:6379", 0),
        ("redis://:pw@host:1/2", 2),
        ("redis://host:1?db=4", 4),
    ],
)
def test_redis_db(url: str, db: int) -> None:
    assert layout.redis_db(url) == db


def test_binding_member_is_what_a_celery_queue_declaration_stores() -> None:
    assert layout.binding_member("asyncio") == "asyncio\x06\x16\x06\x16asyncio"
    assert layout.task_meta_key("abc") == "celery-task-meta-abc"
