"""Removing a run's own jobs from a queue on a Redis the run does not own.

The bench and the soak run labs of their own. On the embedded Redis they start they own every
queue, and whatever is left there goes with the server. On a Redis they were given
(``POOLLAB_BROKER_URL``) the queues may hold someone else's jobs too: they never delete a
queue there, they take out only the messages whose task id is one they published.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

import redis

# list items read at a time while looking for the run's own messages
_CHUNK = 1000


def task_id_of(raw: bytes) -> str | None:
    """The task id of a kombu message as it sits on a Redis list; None if it is not one."""
    try:
        message = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(message, dict):
        return None
    for part, key in (("headers", "id"), ("properties", "correlation_id")):
        section = message.get(part)
        value = section.get(key) if isinstance(section, dict) else None
        if isinstance(value, str):
            return value
    return None


def remove_own_messages(client: redis.Redis, queue: str, ids: Collection[str]) -> int:
    """Take the messages of these task ids off a queue, and nothing else; returns how many.

    Each is removed by its exact bytes (``LREM``), so a message a consumer pops meanwhile is
    simply not found, and every other message stays where it was.
    """
    wanted = set(ids)
    if not wanted:
        return 0
    own: list[bytes] = []
    start = 0
    while True:
        chunk: list[Any] = client.lrange(queue, start, start + _CHUNK - 1)
        own.extend(raw for raw in chunk if task_id_of(raw) in wanted)
        if len(chunk) < _CHUNK:
            break
        start += _CHUNK
    if not own:
        return 0
    with client.pipeline(transaction=False) as pipe:
        for raw in own:
            pipe.lrem(queue, 1, raw)  # type: ignore[arg-type]  # bytes, as read
        return sum(int(n) for n in pipe.execute())


def remove_leftovers(broker_url: str, leftovers: Mapping[str, Collection[str]], who: str) -> str:
    """Take a run's unfinished jobs off the queues of a Redis it was given; say what it did."""
    left = {queue: ids for queue, ids in leftovers.items() if ids}
    if not left:
        return f"{who}: no unfinished job of its own left on the queues"
    client = redis.Redis.from_url(broker_url, socket_timeout=10.0)
    try:
        removed = {queue: remove_own_messages(client, queue, ids) for queue, ids in left.items()}
    except redis.RedisError as exc:
        return f"{who}: could not remove its unfinished jobs from the queues: {exc}"
    finally:
        client.close()
    listed = ", ".join(f"{queue} ({n})" for queue, n in removed.items())
    return (
        f"{who}: removed {sum(removed.values())} unfinished jobs of its own from {listed}, "
        "by task id (POOLLAB_BROKER_URL is not its own Redis: nothing else there is touched)"
    )
