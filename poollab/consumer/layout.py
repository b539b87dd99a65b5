"""Where kombu's Redis transport and Celery's Redis backend keep things, by their own names.

Every name is read from kombu or Celery rather than retyped, so that a change of default
there is a change here. The consumer's own key (liveness) is named in :mod:`.health`.
"""

from __future__ import annotations

from bisect import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlparse

from celery.app.defaults import DEFAULTS as CELERY_DEFAULTS
from celery.backends.base import KeyValueStoreBackend
from celery.events.event import EVENT_EXCHANGE_NAME
from kombu.pidbox import Mailbox
from kombu.transport.redis import PRIORITY_STEPS
from kombu.transport.redis import Channel as RedisChannel

SEP: str = RedisChannel.sep
UNACKED: str = RedisChannel.unacked_key
UNACKED_INDEX: str = RedisChannel.unacked_index_key
UNACKED_MUTEX: str = RedisChannel.unacked_mutex_key
UNACKED_MUTEX_EXPIRE: int = RedisChannel.unacked_mutex_expire
BINDING: str = RedisChannel.keyprefix_queue
BINDING_PERMANENT: str = RedisChannel.keyprefix_binding_permanent
TASK_META_PREFIX: str = KeyValueStoreBackend.task_keyprefix
EVENT_EXCHANGE: str = EVENT_EXCHANGE_NAME
MIN_PRIORITY: int = RedisChannel.min_priority
MAX_PRIORITY: int = RedisChannel.max_priority
DEFAULT_PRIORITY: int = RedisChannel.default_priority
# Celery's remote control: kombu's Mailbox named after Celery's control_exchange setting
PIDBOX_EXCHANGE: str = Mailbox.exchange_fmt % CELERY_DEFAULTS["control_exchange"]
PIDBOX_REPLY_EXCHANGE: str = Mailbox.reply_exchange_fmt % CELERY_DEFAULTS["control_exchange"]


def priority_step(priority: int, steps: tuple[int, ...] = tuple(PRIORITY_STEPS)) -> int:
    """The step a message priority is filed under (kombu's ``Channel.priority``)."""
    return steps[bisect(steps, priority) - 1]


def queue_key(queue: str, priority: int = 0) -> str:
    """The list a message of this priority waits in (kombu's ``Channel._q_for_pri``)."""
    step = priority_step(priority)
    return f"{queue}{SEP}{step}" if step else queue


def queue_keys(queue: str) -> list[str]:
    """Every sub-list of a queue, in the order kombu's BRPOP takes from them."""
    return [queue_key(queue, step) for step in PRIORITY_STEPS]


def message_priority(payload: object) -> int:
    """A raw message's priority clamped like kombu's ``_get_message_priority``."""
    try:
        raw = payload["properties"]["priority"]  # type: ignore[index]
        return max(min(int(raw), MAX_PRIORITY), MIN_PRIORITY)
    except (TypeError, ValueError, KeyError):
        return DEFAULT_PRIORITY


def binding_member(queue: str, routing_key: str | None = None) -> str:
    """A direct binding ``routing_key -> queue`` as kombu stores it in the binding set."""
    return SEP.join([routing_key if routing_key is not None else queue, "", queue])


def task_meta_key(task_id: str) -> str:
    """The result key, which is also the channel Celery's backend publishes it on."""
    return f"{TASK_META_PREFIX}{task_id}"


def redis_db(url: str) -> int:
    """The database number of a redis:// URL (path or ``?db=``), as kombu reads it."""
    parsed = urlparse(url)
    for part in parsed.query.split("&"):
        name, _, value = part.partition("=")
        if name == "db" and value.isdigit():
            return int(value)
    path = parsed.path.strip("/")
    return int(path) if path.isdigit() else 0


def fanout_topic(db: int, exchange: str, routing_key: str = "") -> str:
    """The PUB/SUB channel kombu publishes a fanout message on (fanout_prefix and patterns on).

    Without a routing key (a pidbox broadcast) the channel is the exchange's alone.
    """
    prefix: str = RedisChannel.keyprefix_fanout.format(db=db)
    return f"{prefix}{exchange}/{routing_key}" if routing_key else f"{prefix}{exchange}"


def event_topic(db: int, routing_key: str) -> str:
    return fanout_topic(db, EVENT_EXCHANGE, routing_key)


def pidbox_topic(db: int) -> str:
    """The channel control broadcasts arrive on: a node's pidbox queue binds with no key."""
    return fanout_topic(db, PIDBOX_EXCHANGE)


def direct_routes(members: Iterable[bytes | str], routing_key: str) -> list[str]:
    """Queues a direct exchange sends ``routing_key`` to, from its binding set's members."""
    queues = set()
    for member in members:
        text = member.decode() if isinstance(member, bytes) else member
        parts = text.split(SEP)
        if len(parts) == 3 and parts[0] == routing_key:
            queues.add(parts[2])
    return sorted(queues)


@dataclass(frozen=True)
class QueueLayout:
    """The keys one consumer of one queue reads and writes."""

    queue: str

    @property
    def keys(self) -> list[str]:
        return queue_keys(self.queue)

    @property
    def binding_key(self) -> str:
        return BINDING % self.queue

    @property
    def binding_permanent_key(self) -> str:
        return BINDING_PERMANENT % self.queue
