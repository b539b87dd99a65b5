"""Is a consumer of this node name alive? A key its hooks refresh, with a TTL.

Every consumer (each Celery pool and the asyncio consumer) keeps one, written by its hook
layer (:mod:`poollab.hooks.layer`) together with its resource sample. The key holds the
consumer's description (pool, pid, concurrency, and for the asyncio consumer its loop and
CPU executor), so a report can show how the consumer was run; it expires three heartbeats
after the consumer stops refreshing it, and a consumer that stops cleanly deletes it.
"""

from __future__ import annotations

import json
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from poollab.settings import Settings

ALIVE_PREFIX = "poollab.consumer.alive:"
# three heartbeats (Celery's 2 s): one late beat is not a death
ALIVE_TTL_S = 6


def alive_key(nodename: str) -> str:
    return f"{ALIVE_PREFIX}{nodename}"


def alive_value(info: dict[str, Any]) -> str:
    return json.dumps(info, sort_keys=True)


def read_info(settings: Settings, nodename: str, timeout_s: float = 1.0) -> dict[str, Any] | None:
    """The description a live consumer keeps under its liveness key, or None."""
    # no retries: a Redis that does not answer at once means "not alive", now
    client = redis.Redis.from_url(
        settings.broker_url,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        raw = client.get(alive_key(nodename))
    finally:
        client.close()
    if raw is None:
        return None
    try:
        info = json.loads(raw)
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def is_alive(settings: Settings, nodename: str, timeout_s: float = 1.0) -> bool:
    """Whether a consumer of this node name refreshed its liveness key lately."""
    try:
        return read_info(settings, nodename, timeout_s) is not None
    except (redis.RedisError, OSError):
        return False
