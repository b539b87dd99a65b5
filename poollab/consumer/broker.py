"""The consumer's side of kombu's Redis transport and Celery's Redis result backend.

Taking a message and holding it in kombu's ``unacked`` hash and ``unacked_index`` zset is
one Lua script, so no message is ever out of both the queue and the hash (kombu itself does
BRPOP, then a pipeline). Waiting for messages uses ``BLMOVE q q RIGHT RIGHT``: a blocking
look that wakes on a new message without taking it, so the take stays inside the script.
Storing results, acknowledging and publishing events is one script call per batch of
finished jobs: one command instead of four per job, and store-then-ack is atomic.

Restoring follows kombu's ``QoS.restore_visible`` / ``restore_by_tag`` key for key, so a kombu
worker restores what this consumer held when it died, and this consumer restores theirs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import LockError, WatchError

from poollab.consumer import layout

log = logging.getLogger(__name__)

# KEYS: unacked hash, unacked_index zset, then the queue's sub-lists in BRPOP order.
# ARGV: how many to take, now (epoch seconds, kombu scores with the client's clock),
# the routing key to hold under when a message lacks delivery_info (kombu would KeyError).
# Returns a flat list: messages still waiting in the queue's lists, then held flag (1 when
# filed in unacked), raw message, held flag, raw message, ...
# The hash entry is ``[raw, exchange, routing_key]`` like kombu's ``QoS.append``; it is
# spliced as text because cjson would re-encode empty arrays as objects.
POP_AND_HOLD = """
local want = tonumber(ARGV[1])
local out = {}
local taken = 0
for i = 3, #KEYS do
  if taken >= want then break end
  local items = redis.call('RPOP', KEYS[i], want - taken)
  if items then
    for _, item in ipairs(items) do
      taken = taken + 1
      local held = 0
      local ok, msg = pcall(cjson.decode, item)
      if ok and type(msg) == 'table' and type(msg['properties']) == 'table' then
        local props = msg['properties']
        local tag = props['delivery_tag']
        if type(tag) == 'string' and tag ~= '' then
          local exchange, routing_key = '', ARGV[3]
          local info = props['delivery_info']
          if type(info) == 'table' then
            if type(info['exchange']) == 'string' then exchange = info['exchange'] end
            if type(info['routing_key']) == 'string' then routing_key = info['routing_key'] end
          end
          redis.call('HSET', KEYS[1], tag,
            '[' .. item .. ',' .. cjson.encode(exchange) .. ',' .. cjson.encode(routing_key) .. ']')
          redis.call('ZADD', KEYS[2], ARGV[2], tag)
          held = 1
        end
      end
      out[#out + 1] = held
      out[#out + 1] = item
    end
  end
end
local waiting = 0
for i = 3, #KEYS do waiting = waiting + redis.call('LLEN', KEYS[i]) end
table.insert(out, 1, waiting)
return out
"""


# KEYS: unacked hash, unacked_index zset, then one result key per finished task.
# ARGV: result expiry (s), number of delivery tags to ack, the tags, one result meta per
# result key, then (channel, payload) pairs of events. Each result is SET with its expiry
# and PUBLISHed on its own key as Celery's Redis backend does; acks come after the stores.
STORE_AND_ACK = """
local expires = ARGV[1]
local ntags = tonumber(ARGV[2])
local first_meta = 3 + ntags
for i = 3, #KEYS do
  local meta = ARGV[first_meta + i - 3]
  redis.call('SET', KEYS[i], meta, 'EX', expires)
  redis.call('PUBLISH', KEYS[i], meta)
end
if ntags > 0 then
  local tags = {}
  for i = 3, 2 + ntags do tags[#tags + 1] = ARGV[i] end
  redis.call('ZREM', KEYS[2], unpack(tags))
  redis.call('HDEL', KEYS[1], unpack(tags))
end
for i = first_meta + #KEYS - 2, #ARGV, 2 do
  redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
end
return #KEYS - 2
"""


@dataclass(frozen=True, slots=True)
class Taken:
    """One message taken off the queue; ``held`` when it is filed in kombu's unacked hash."""

    raw: bytes
    held: bool


@dataclass(frozen=True, slots=True)
class Completion:
    """What finishing (or refusing) one message writes: its result meta and its ack."""

    task_id: str | None
    meta: str | None
    tag: str | None


def make_client(url: str, max_connections: int) -> aioredis.Redis:
    """A client whose pool waits for a free connection instead of raising MaxConnectionsError."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=30, socket_keepalive=True
    )
    return aioredis.Redis(connection_pool=pool)


class Broker:
    """The queue, the unacked bookkeeping, the result backend and the event channel."""

    def __init__(
        self,
        client: aioredis.Redis,
        queue: str,
        result_expires: int,
        backend: aioredis.Redis | None = None,
    ) -> None:
        self.client = client
        # None: results live in the broker's Redis, written in the same pipeline as acks
        self.backend = backend
        self.queue = layout.QueueLayout(queue)
        self.result_expires = result_expires
        self._pop = client.register_script(POP_AND_HOLD)
        self._store_and_ack = client.register_script(STORE_AND_ACK)
        self._pop_keys = [layout.UNACKED, layout.UNACKED_INDEX, *self.queue.keys]
        # told the ids whose results are written, and whether their acks went in the same
        # write (results in the broker's Redis) or are still to come (results elsewhere)
        self.on_stored: Callable[[list[str], bool], Awaitable[None]] | None = None

    async def declare(self) -> None:
        """Bind the queue as a Celery worker's ``Queue(name)`` declaration does."""
        member = layout.binding_member(self.queue.queue)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.sadd(self.queue.binding_key, member)
            pipe.sadd(self.queue.binding_permanent_key, member)
            await pipe.execute()

    async def take(self, count: int) -> tuple[list[Taken], int]:
        """Take up to ``count`` messages, each filed in unacked in the same atomic step.

        Also returns how many messages are still waiting, so an emptied queue is waited on
        at once instead of being asked again.
        """
        reply = await self._pop(
            keys=self._pop_keys, args=[count, repr(time.time()), self.queue.queue]
        )
        taken = [Taken(bytes(reply[i + 1]), bool(reply[i])) for i in range(1, len(reply), 2)]
        return taken, int(reply[0])

    async def wait(self, timeout_s: float) -> bool:
        """Block until the queue's main list has a message (without taking it) or timeout."""
        key = self.queue.queue
        found = await self.client.blmove(key, key, timeout_s, "RIGHT", "RIGHT")  # type: ignore[arg-type]
        return found is not None

    async def write(self, done: Sequence[Completion], events: Sequence[tuple[str, str]]) -> None:
        """Store results (SET EX + PUBLISH like Celery's backend), then ack, then publish events."""
        stores = [c for c in done if c.meta is not None and c.task_id]
        acks = [c.tag for c in done if c.tag]
        if self.backend is None:
            # one command for the whole batch: results, acks and events, atomically
            await self._store_and_ack(
                keys=[
                    layout.UNACKED,
                    layout.UNACKED_INDEX,
                    *(layout.task_meta_key(c.task_id) for c in stores),  # type: ignore[arg-type]
                ],
                args=[
                    self.result_expires,
                    len(acks),
                    *acks,
                    *(c.meta or "" for c in stores),
                    *(part for event in events for part in event),
                ],
            )
            if stores and self.on_stored is not None:
                await self.on_stored([c.task_id for c in stores if c.task_id], True)
            return
        # results in another Redis: stored there first, acked here after (a kill in between
        # runs the job again: the one duplicate at-least-once allows)
        if stores:
            async with self.backend.pipeline(transaction=False) as pipe:
                for completion in stores:
                    key = layout.task_meta_key(completion.task_id)  # type: ignore[arg-type]
                    pipe.set(key, completion.meta, ex=self.result_expires)  # type: ignore[arg-type]
                    pipe.publish(key, completion.meta)  # type: ignore[arg-type]
                await pipe.execute()
            if self.on_stored is not None:
                await self.on_stored([c.task_id for c in stores if c.task_id], False)
        if acks or events:
            async with self.client.pipeline(transaction=False) as pipe:
                if acks:
                    pipe.zrem(layout.UNACKED_INDEX, *acks)
                    pipe.hdel(layout.UNACKED, *acks)
                for topic, payload in events:
                    pipe.publish(topic, payload)
                await pipe.execute()

    async def publish(self, events: Sequence[tuple[str, str]]) -> None:
        """Publish events now (worker events)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for topic, payload in events:
                pipe.publish(topic, payload)
            await pipe.execute()

    # --- restoring, as kombu's QoS does ----------------------------------------------------

    async def restore_by_tag(self, tag: str | bytes, leftmost: bool = False) -> bool:
        """Put one held message back on its queue and forget it (kombu's ``restore_by_tag``)."""
        async with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(layout.UNACKED)
                    raw: bytes | None = await pipe.hget(layout.UNACKED, tag)  # type: ignore[assignment]
                    targets = await self._restore_targets(raw, tag) if raw else []
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.zrem(layout.UNACKED_INDEX, tag)
                    pipe.hdel(layout.UNACKED, tag)
                    for key, payload in targets:
                        (pipe.lpush if leftmost else pipe.rpush)(key, payload)
                    await pipe.execute()
                    return bool(targets)
                except WatchError:
                    continue

    async def _restore_targets(self, raw: bytes, tag: str | bytes) -> list[tuple[str, str]]:
        try:
            message, exchange, routing_key = json.loads(raw)
        except (ValueError, TypeError):
            log.error("dropping unrestorable unacked entry %r: not [message, exchange, key]", tag)
            return []
        try:
            message["headers"]["redelivered"] = True
            message["properties"]["delivery_info"]["redelivered"] = True
        except (KeyError, TypeError):
            pass
        payload = json.dumps(message)
        priority = layout.message_priority(message)
        return [
            (layout.queue_key(queue, priority), payload)
            for queue in await self._lookup(exchange, routing_key)
        ]

    async def _lookup(self, exchange: str, routing_key: str) -> list[str]:
        """Queues a direct exchange routes to, from kombu's binding table in Redis."""
        if not exchange:
            return [routing_key]
        members: set[bytes] = await self.client.smembers(layout.BINDING % exchange)  # type: ignore[assignment]
        queues = set()
        for member in members:
            parts = member.decode().split(layout.SEP)
            if len(parts) == 3 and parts[0] == routing_key:
                queues.add(parts[2])
        if not queues:
            # kombu would drop it (no dead-letter queue by default); keeping it is kinder
            log.warning(
                "no binding for %s/%s: restoring to queue %r", exchange, routing_key, routing_key
            )
            return [routing_key]
        return sorted(queues)

    async def restore_visible(self, visibility_timeout: float, limit: int | None = None) -> int:
        """Restore messages held longer than the visibility timeout; kombu's mutex guards it."""
        lock = self.client.lock(layout.UNACKED_MUTEX, timeout=layout.UNACKED_MUTEX_EXPIRE)
        if not await lock.acquire(blocking=False):
            return 0
        restored = 0
        try:
            ceil = time.time() - visibility_timeout
            visible: list[tuple[bytes, float]] = await self.client.zrange(  # type: ignore[assignment]
                layout.UNACKED_INDEX,
                ceil,
                0,
                desc=True,
                byscore=True,
                offset=0 if limit else None,
                num=limit,
                withscores=True,
            )
            for tag, _score in visible or []:
                restored += await self.restore_by_tag(tag)
        finally:
            # held past its expiry and taken by another: kombu ignores that too
            with contextlib.suppress(LockError):
                await lock.release()
        return restored

    async def close(self) -> None:
        await self.client.aclose()
        if self.backend is not None:
            await self.backend.aclose()
