"""Jobs waiting on each pool's queue and held unacknowledged, read from kombu's own keys.

One pipeline per poll. For each pool, ``LLEN`` and ``LINDEX -1`` of every priority
sub-list of its queue (kombu LPUSHes and BRPOPs, and RPUSHes a restored message, so the
tail of a list is the next message out and the longest waiting), then one ``HSCAN`` step
over kombu's ``unacked`` hash, whose values are ``[message, exchange, routing_key]``.

The hash holds every message delivered and not yet acknowledged, of every queue: reading
it whole each second could cost more than the jobs. Each poll reads at most
``scan_count`` entries and goes on from the cursor where the previous poll stopped; the
per-pool counts are published when a sweep of the whole hash completes. A hash that small
(Redis answers a small hash in one step whatever the count) is swept on every poll; a
larger one is counted a few polls late.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from poollab.consumer.layout import UNACKED, queue_keys
from poollab.jobs import SENT_HEADER

UNACKED_SCAN_COUNT = 1000


@dataclass(frozen=True)
class QueueStats:
    jobs: int
    # now − sent of the longest waiting message; 0 when none waits
    oldest_age_s: float
    # None until the first sweep of the unacked hash has completed
    unacked: int | None


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def parse_message(raw: bytes | str | None) -> dict[str, Any] | None:
    """kombu's JSON envelope of one waiting message, or None when it is not one."""
    if raw is None:
        return None
    try:
        payload = json.loads(_text(raw))
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def sent_at(payload: Mapping[str, Any]) -> float | None:
    """When the message was sent: the producer's stamp, else a timestamp it carries."""
    headers = payload.get("headers")
    properties = payload.get("properties")
    headers = headers if isinstance(headers, dict) else {}
    properties = properties if isinstance(properties, dict) else {}
    for value in (headers.get(SENT_HEADER), headers.get("timestamp"),
                  properties.get("timestamp")):  # fmt: skip
        if (stamp := _number(value)) is not None:
            return stamp
    return None


def message_identity(payload: Mapping[str, Any]) -> str | None:
    """What tells one message from another (kombu's delivery tag, else Celery's task id)."""
    properties = payload.get("properties")
    headers = payload.get("headers")
    if isinstance(properties, dict) and properties.get("delivery_tag"):
        return str(properties["delivery_tag"])
    if isinstance(headers, dict) and headers.get("id"):
        return str(headers["id"])
    return None


def unacked_queue(raw: bytes | str) -> str | None:
    """The routing key of one ``unacked`` entry: the queue, for the lab's direct routing."""
    try:
        entry = json.loads(_text(raw))
    except ValueError:
        return None
    if not isinstance(entry, list) or len(entry) != 3:
        return None
    message, _exchange, routing_key = entry
    if isinstance(routing_key, str) and routing_key:
        return routing_key
    # a message restored from elsewhere may have lost its routing key; its own delivery
    # info still names the queue it was sent to
    try:
        found = message["properties"]["delivery_info"]["routing_key"]
    except (TypeError, KeyError):
        return None
    return found if isinstance(found, str) and found else None


class QueuePoller:
    """The per-pool figures of one Redis database, one pipeline per :meth:`poll`."""

    def __init__(self, pools: Sequence[str], scan_count: int = UNACKED_SCAN_COUNT) -> None:
        self.pools = tuple(pools)
        self.scan_count = scan_count
        self._lists = {pool: queue_keys(pool) for pool in self.pools}
        self._cursor = 0
        # delivery tag → queue, for the sweep in progress (a tag seen twice counts once:
        # HSCAN may return an entry again while Redis rehashes)
        self._sweep: dict[str, str] = {}
        self._unacked: dict[str, int] | None = None
        # sub-list → (identity of its tail message, when first seen there): the age of a
        # message that carries no send time is at least how long it has been the tail
        self._tail_seen: dict[str, tuple[str, float]] = {}

    def add_commands(self, pipe: Pipeline) -> None:
        for pool in self.pools:
            for key in self._lists[pool]:
                pipe.llen(key)
                pipe.lindex(key, -1)
        pipe.hscan(UNACKED, self._cursor, count=self.scan_count)

    def read_replies(self, replies: Sequence[Any], now: float) -> dict[str, QueueStats]:
        """Turn the pipeline's replies (in :meth:`add_commands` order) into figures."""
        position = 0
        waiting: dict[str, tuple[int, float]] = {}
        for pool in self.pools:
            jobs = 0
            oldest = math.inf
            for key in self._lists[pool]:
                length, tail = replies[position], replies[position + 1]
                position += 2
                jobs += int(length or 0)
                if tail is not None:
                    oldest = min(oldest, self._tail_sent(key, tail, now))
                else:
                    self._tail_seen.pop(key, None)
            age = 0.0 if jobs == 0 or oldest == math.inf else max(now - oldest, 0.0)
            waiting[pool] = (jobs, round(age, 3))
        cursor, entries = replies[position]
        self._scan_step(int(cursor), entries)
        return {
            pool: QueueStats(
                jobs,
                age,
                None if self._unacked is None else self._unacked.get(pool, 0),
            )
            for pool, (jobs, age) in waiting.items()
        }

    async def poll(self, client: aioredis.Redis, now: float) -> dict[str, QueueStats]:
        async with client.pipeline(transaction=False) as pipe:
            self.add_commands(pipe)
            replies = await pipe.execute()
        return self.read_replies(replies, now)

    def _tail_sent(self, key: str, raw: bytes | str, now: float) -> float:
        payload = parse_message(raw)
        stamp = sent_at(payload) if payload is not None else None
        if stamp is not None:
            self._tail_seen.pop(key, None)
            return stamp
        identity = (message_identity(payload) if payload is not None else None) or _text(raw)
        seen = self._tail_seen.get(key)
        if seen is None or seen[0] != identity:
            seen = (identity, now)
            self._tail_seen[key] = seen
        return seen[1]

    def _scan_step(self, cursor: int, entries: Mapping[Any, Any]) -> None:
        for tag, raw in entries.items():
            queue = unacked_queue(raw)
            if queue is not None:
                self._sweep[_text(tag)] = queue
        self._cursor = cursor
        if cursor == 0:
            counts = dict.fromkeys(self.pools, 0)
            for queue in self._sweep.values():
                if queue in counts:
                    counts[queue] += 1
            self._unacked = counts
            self._sweep = {}
