"""Celery's remote control for the asyncio consumer, so Flower and ``celery inspect`` know it.

Celery's control client is kombu's ``Mailbox`` over the ``celery.pidbox`` fanout exchange.
On Redis a broadcast is a PUBLISH on ``/{db}.celery.pidbox`` (a node's pidbox queue binds
with no routing key, so the channel carries no ``/<key>``); its body says the method, the
arguments, the nodes it is meant for (``destination``, or ``pattern`` with a ``matcher``),
and, when an answer is wanted, a ``ticket`` and ``reply_to``. The answer is one message
``{nodename: reply}`` sent to the ``reply.celery.pidbox`` direct exchange: kombu looks the
routing key up in ``_kombu.binding.reply.celery.pidbox`` and LPUSHes onto each queue bound
to it, with the ticket in the ``ticket`` header so the asker can match it.

The replies have the shapes of Celery's own worker (``celery.worker.control``): ping is
``{'ok': 'pong'}``, stats carries ``pid``, ``pool`` with ``max-concurrency``, ``total``,
``rusage`` and ``broker``, active and reserved list task dicts as ``Request.info()`` does.
They are built from the consumer's own state, read on the consumer's loop, so a reply is a
consistent snapshot. Commands that change a worker (revoke, rate limits, pool sizes,
shutdown...) are not carried out: asked with a reply wanted they answer an error saying so,
as Celery's worker answers a command it does not know.

Listening runs on a connection of its own, so a burst of inspections never waits for, nor
delays, the connections that carry jobs; a lost connection is re-made with backoff.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import resource
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import redis.asyncio as aioredis
from kombu.clocks import LamportClock
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.exceptions import ContentDisallowed, DecodeError
from kombu.matcher import match
from kombu.utils.url import maybe_sanitize_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from poollab import jobs
from poollab.backoff import Backoff
from poollab.consumer import layout, protocol
from poollab.consumer.broker import Taken
from poollab.consumer.config import POOL, ConsumerConfig
from poollab.settings import Settings

log = logging.getLogger(__name__)

# a subscription that has heard nothing for this long is PINGed, and re-made after
# MISSED_PINGS unanswered ones: a half-open connection would otherwise wait forever
IDLE_PING_S = 10.0
MISSED_PINGS = 2
# replies are single commands: one that hangs this long means the connection is gone
COMMAND_TIMEOUT_S = 10.0
# A request carries the asker's deadline (kombu: publish time + timeout, by its clock). One
# long past it is dropped, since nobody collects the answer any more; the allowance keeps a
# node whose clock runs a little ahead from ignoring every short ``celery inspect``.
EXPIRY_ALLOWANCE_S = 1.0
MASK = "********"  # how Celery's ``conf`` reply masks a password in a URL
# getrusage's fields, named as Celery's ``stats`` names them (without ``ru_``)
RUSAGE_FIELDS = (
    "utime", "stime", "maxrss", "ixrss", "idrss", "isrss", "minflt", "majflt", "nswap",
    "inblock", "oublock", "msgsnd", "msgrcv", "nsignals", "nvcsw", "nivcsw",
)  # fmt: skip


class JobView(Protocol):
    """What a reply reads of one job the consumer holds."""

    taken: Taken
    started: bool
    started_at: float | None


class StatsView(Protocol):
    """The consumer's counters."""

    processed: int
    rejected: int
    by_task: Counter[str]


class BadRequest(ValueError):
    """A message on the pidbox channel that is not a control request this node can read."""


@dataclass(frozen=True)
class Request:
    """One control request as kombu's ``Mailbox._publish`` sends it."""

    method: str
    arguments: dict[str, Any]
    destination: list[str] | None = None
    pattern: str | None = None
    matcher: str | None = None
    ticket: str | None = None
    reply_exchange: str | None = None
    reply_routing_key: str | None = None
    clock: int = 0
    expires: float | None = None

    @property
    def wants_reply(self) -> bool:
        return bool(self.ticket and self.reply_exchange is not None and self.reply_routing_key)


def parse_request(raw: bytes | str) -> Request:
    """Read a pidbox message (JSON only, as Celery accepts); raise :class:`BadRequest`."""
    try:
        payload = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise BadRequest("not a kombu envelope")
    headers = payload.get("headers") or {}
    props = payload.get("properties") or {}
    if not isinstance(headers, dict) or not isinstance(props, dict):
        raise BadRequest("headers or properties are not objects")
    try:
        # the task messages' decoding: JSON only, refused before the body is looked at
        body = protocol._decode_body(payload, props)
    except (ContentDisallowed, DecodeError) as exc:
        raise BadRequest(str(exc)) from None
    if not isinstance(body, dict) or not isinstance(body.get("method"), str):
        raise BadRequest("body has no method")
    arguments = body.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise BadRequest("arguments are not an object")
    destination = body.get("destination")
    if destination is not None and not isinstance(destination, list):
        raise BadRequest("destination is not a list")
    reply_to = body.get("reply_to")
    if not isinstance(reply_to, dict):
        reply_to = {}
    clock = headers.get("clock")
    expires = headers.get("expires")
    return Request(
        method=body["method"],
        arguments=arguments,
        destination=destination or None,
        pattern=_str(body.get("pattern")),
        matcher=_str(body.get("matcher")),
        ticket=_str(body.get("ticket")),
        reply_exchange=_str(reply_to.get("exchange")),
        reply_routing_key=_str(reply_to.get("routing_key")),
        clock=clock if isinstance(clock, int) and not isinstance(clock, bool) else 0,
        expires=float(expires) if _is_number(expires) and expires else None,
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def addressed_to(request: Request, nodename: str) -> bool:
    """Whether this node is to handle the request (kombu's ``Node.handle_message``)."""
    if request.destination:
        return nodename in request.destination
    if request.pattern and request.matcher:
        try:
            return match(nodename.encode(), request.pattern.encode(), request.matcher)
        except Exception:  # an unknown matcher or a bad pattern addresses nobody
            return False
    return True


def expired(request: Request, now: float | None = None) -> bool:
    if request.expires is None:
        return False
    return (time.time() if now is None else now) > request.expires + EXPIRY_ALLOWANCE_S


def reply_message(
    nodename: str, reply: Any, exchange: str, routing_key: str, ticket: str, clock: int
) -> str:
    """The kombu message a reply is LPUSHed as (what ``Mailbox._publish_reply`` sends)."""
    body = base64.b64encode(protocol.dumps({nodename: reply}).encode()).decode()
    return json.dumps(
        {
            "body": body,
            "content-encoding": "utf-8",
            "content-type": protocol.JSON_CONTENT_TYPE,
            "headers": {"ticket": ticket, "clock": clock},
            "properties": {
                "delivery_mode": 1,  # the reply exchange is transient
                "delivery_info": {"exchange": exchange, "routing_key": routing_key},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
    )


def rusage() -> dict[str, float]:
    """The process's resource usage, under the names Celery's ``stats`` uses."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {name: getattr(usage, f"ru_{name}") for name in RUSAGE_FIELDS}


@dataclass(frozen=True)
class _Held:
    """One held job, read from its message."""

    message: protocol.TaskMessage
    properties: Mapping[str, Any]
    started: bool
    started_at: float | None

    @property
    def eta_ahead(self) -> bool:
        eta = self.message.eta
        return eta is not None and eta > datetime.now(UTC)


class Commands:
    """The commands this node answers, each returning Celery's worker's reply shape."""

    def __init__(
        self,
        config: ConsumerConfig,
        settings: Settings,
        info: Mapping[str, Any],
        stats: StatsView,
        jobs: Mapping[Any, JobView],
        clock: LamportClock | None = None,
    ) -> None:
        self.config = config
        self.settings = settings
        self.info = info
        self.stats = stats
        self.jobs = jobs
        self.clock = clock or LamportClock()
        self.pid = int(info.get("pid") or os.getpid())
        self.handlers: dict[str, Callable[..., Any]] = {
            "ping": self.ping,
            "stats": self.stats_,
            "active": self.active,
            "reserved": self.reserved,
            "scheduled": self.scheduled,
            "registered": self.registered,
            "revoked": self.revoked,
            "active_queues": self.active_queues,
            "conf": self.conf,
            "clock": self.clock_,
            "query_task": self.query_task,
            "hello": self.hello,
        }
        self.names = tuple(sorted(self.handlers))
        # Celery's own aliases of the same commands
        for alias, name in (
            ("dump_active", "active"),
            ("dump_reserved", "reserved"),
            ("dump_schedule", "scheduled"),
            ("dump_tasks", "registered"),
            ("dump_revoked", "revoked"),
            ("dump_conf", "conf"),
        ):
            self.handlers[alias] = self.handlers[name]
        self._broker = _broker_info(settings)

    def dispatch(self, method: str, arguments: Mapping[str, Any]) -> Any:
        """The reply to one command; errors are replies too, as kombu's ``Node`` makes them."""
        handler = self.handlers.get(method)
        if handler is None:
            return {
                "error": f"unknown or unsupported control command {method!r}: "
                f"{self.config.nodename} answers {', '.join(self.names)}"
            }
        try:
            return handler(**arguments)
        except Exception as exc:
            log.exception("control command %s failed", method)
            return {"error": repr(exc)}

    # --- what the jobs are -----------------------------------------------------------------

    def _held(self) -> list[_Held]:
        held = []
        for job in list(self.jobs.values()):
            try:
                message = protocol.parse(job.taken.raw)
                props = json.loads(job.taken.raw).get("properties") or {}
            except (protocol.Rejected, ValueError, AttributeError):
                continue  # being rejected: it never runs here
            held.append(_Held(message, props, job.started, job.started_at))
        return held

    def _request_info(self, held: _Held, safe: bool = False) -> dict[str, Any]:
        """A job as Celery's ``Request.info()`` describes one."""
        message = held.message
        delivery = held.properties.get("delivery_info") or {}
        if safe:
            args: Any = message.headers.get("argsrepr") or repr(tuple(message.args))
            kwargs: Any = message.headers.get("kwargsrepr") or repr(message.kwargs)
        else:
            args, kwargs = message.args, message.kwargs
        return {
            "id": message.task_id,
            "name": message.task,
            "args": args,
            "kwargs": kwargs,
            "type": message.task,
            "hostname": self.config.nodename,
            "time_start": held.started_at if held.started else None,
            # acknowledged only once it ran (acks late), like the lab's workers
            "acknowledged": False,
            "delivery_info": {
                "exchange": delivery.get("exchange"),
                "routing_key": delivery.get("routing_key"),
                "priority": held.properties.get("priority"),
                "redelivered": bool(delivery.get("redelivered", False)),
            },
            # jobs run on this process's loop (CPU parts in its executor)
            "worker_pid": self.pid,
        }

    def _state_of(self, held: _Held) -> str:
        if held.started:
            return "active"
        return "scheduled" if held.eta_ahead else "reserved"

    # --- the commands ----------------------------------------------------------------------

    def ping(self, **_: Any) -> dict[str, str]:
        return {"ok": "pong"}

    def stats_(self, **_: Any) -> dict[str, Any]:
        running = sum(1 for job in list(self.jobs.values()) if job.started)
        return {
            "total": dict(self.stats.by_task),
            "pid": self.pid,
            "clock": str(self.clock.value),
            "uptime": round(time.time() - float(self.info.get("started") or time.time())),
            "pool": {
                "implementation": "poollab.consumer.consumer:Consumer",
                "max-concurrency": self.config.concurrency,
                "processes": [self.pid],
                "loop": self.config.loop,
                "cpu-executor": self.config.cpu_executor,
                "cpu-workers": self.info.get("cpu_workers"),
                "running": running,
                "held": len(self.jobs),
            },
            "broker": dict(self._broker),
            # it holds at most one message per slot
            "prefetch_count": self.config.concurrency,
            "rusage": rusage(),
            "processed": self.stats.processed,
            "rejected": self.stats.rejected,
            "queue": self.config.queue,
        }

    def active(self, safe: bool | None = None, **_: Any) -> list[dict[str, Any]]:
        return [self._request_info(h, bool(safe)) for h in self._held() if h.started]

    def reserved(self, **_: Any) -> list[dict[str, Any]]:
        return [self._request_info(h) for h in self._held() if not h.started and not h.eta_ahead]

    def scheduled(self, **_: Any) -> list[dict[str, Any]]:
        return [
            {
                "eta": h.message.eta.isoformat() if h.message.eta else None,
                "priority": h.properties.get("priority"),
                "request": self._request_info(h),
            }
            for h in self._held()
            if not h.started and h.eta_ahead
        ]

    def registered(self, **_: Any) -> list[str]:
        # the lab's tasks carry no exchange, routing key or rate limit: bare names, as
        # Celery's worker lists such tasks
        return sorted(jobs.TASK_NAMES)

    def revoked(self, **_: Any) -> list[str]:
        return []  # revoke is not carried out here, so nothing is ever revoked

    def active_queues(self, **_: Any) -> list[dict[str, Any]]:
        # declared as a Celery worker declares ``-Q name``: a direct exchange of that name
        queue = self.config.queue
        declared = Queue(queue, Exchange(queue), routing_key=queue)  # type: ignore[no-untyped-call]
        described: dict[str, Any] = declared.as_dict(recurse=True)  # type: ignore[no-untyped-call]
        return [described]

    def conf(self, **_: Any) -> dict[str, Any]:
        """How this consumer is set, under the names of the Celery settings that match."""
        settings = self.settings
        return {
            "broker_url": maybe_sanitize_url(settings.broker_url, mask=MASK),
            "result_backend": maybe_sanitize_url(settings.result_backend_url, mask=MASK),
            "broker_transport_options": {"visibility_timeout": settings.visibility_timeout},
            "task_serializer": "json",
            "result_serializer": "json",
            "accept_content": ["json"],
            "result_accept_content": ["json"],
            "task_acks_late": True,
            "result_expires": settings.result_expires,
            "worker_pool": POOL,
            "worker_concurrency": self.config.concurrency,
            "worker_send_task_events": settings.task_events,
        }

    def clock_(self, **_: Any) -> dict[str, int]:
        return {"clock": self.clock.value}

    def query_task(self, ids: Any = None, **_: Any) -> dict[str, Any]:
        wanted = {ids} if isinstance(ids, str) else set(ids or ())
        return {
            h.message.task_id: [self._state_of(h), self._request_info(h)]
            for h in self._held()
            if h.message.task_id in wanted
        }

    def hello(self, from_node: str = "", revoked: Any = None, **_: Any) -> dict[str, Any] | None:
        # a Celery worker starting up (mingle) asks every node for its revoked ids
        if from_node == self.config.nodename:
            return None
        return {"revoked": [], "clock": self.clock.forward()}


def _broker_info(settings: Settings) -> dict[str, Any]:
    """The broker connection as Celery's ``stats`` describes it, without the password."""
    connection = Connection(  # type: ignore[no-untyped-call]
        settings.broker_url,
        transport_options={"visibility_timeout": settings.visibility_timeout},
    )
    try:
        info: dict[str, Any] = connection.info()  # type: ignore[no-untyped-call]
    finally:
        connection.release()  # type: ignore[no-untyped-call]
    info.pop("password", None)
    return info


class RemoteControl:
    """Listens for control broadcasts on the consumer's loop and answers them."""

    def __init__(self, commands: Commands) -> None:
        self.commands = commands
        self.nodename = commands.config.nodename
        self.settings = commands.settings
        # one clock for the replies and the commands that report it
        self.clock = commands.clock
        self.topic = layout.pidbox_topic(layout.redis_db(self.settings.broker_url))
        self._warned: set[str] = set()
        # whether the last attempt got as far as subscribing: then the next one starts at
        # once instead of backing off further
        self._subscribed = False

    def _client(self) -> aioredis.Redis:
        return aioredis.Redis.from_url(
            self.settings.broker_url,
            socket_keepalive=True,
            socket_connect_timeout=COMMAND_TIMEOUT_S,
            socket_timeout=COMMAND_TIMEOUT_S,
            max_connections=4,
        )

    async def run(self) -> None:
        """Listen until cancelled; a Redis failure is logged and listening starts again."""
        backoff = Backoff()
        delay = backoff.next()
        while True:
            # a client per attempt: nothing of a broken connection is carried over
            client = self._client()
            try:
                await self._listen(client)
            except (RedisError, OSError) as exc:
                log.warning("remote control: redis: %s; listening again in %.1fs", exc, delay)
            except Exception:
                log.exception("remote control failed; listening again in %.1fs", delay)
            else:  # _listen returns only when the subscription went away
                log.warning("remote control: subscription ended; listening again")
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await client.aclose()
            if self._subscribed:
                backoff.reset()
                delay = backoff.next()
            await asyncio.sleep(delay)
            delay = backoff.next()

    async def _listen(self, client: aioredis.Redis) -> None:
        self._subscribed = False
        loop = asyncio.get_running_loop()
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(self.topic)
            self._subscribed = True
            log.info("remote control: %s listening on %s", self.nodename, self.topic)
            heard = loop.time()
            pings = 0
            while pubsub.subscribed:
                message = await pubsub.get_message(timeout=IDLE_PING_S)
                now = loop.time()
                if message is not None:
                    heard, pings = now, 0
                    if message["type"] == "message":
                        await self.handle(message["data"], client)
                    continue
                if now - heard < IDLE_PING_S * (pings + 1):
                    continue
                if pings >= MISSED_PINGS:
                    raise RedisConnectionError(
                        f"no answer on the subscription for {now - heard:.0f}s"
                    )
                await pubsub.ping()
                pings += 1
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def handle(self, raw: bytes | str, client: aioredis.Redis) -> Any:
        """Answer one broadcast if it is for this node; returns the reply (None if none)."""
        self.clock.forward()
        try:
            request = parse_request(raw)
        except BadRequest as exc:
            log.warning("remote control: ignoring a message on %s: %s", self.topic, exc)
            return None
        self.clock.adjust(request.clock)
        if not addressed_to(request, self.nodename):
            return None
        if expired(request):
            log.info(
                "remote control: %s request expired %.1fs ago; not answered",
                request.method,
                time.time() - (request.expires or 0),
            )
            return None
        if not request.wants_reply and request.method not in self.commands.handlers:
            # a cast (revoke, enable_events...) that this node does not carry out
            if request.method not in self._warned:
                self._warned.add(request.method)
                log.warning(
                    "remote control: %r broadcast ignored: not supported by this consumer",
                    request.method,
                )
            return None
        reply = self.commands.dispatch(request.method, request.arguments)
        if request.wants_reply:
            await self._reply(client, request, reply)
        return reply

    async def _reply(self, client: aioredis.Redis, request: Request, reply: Any) -> None:
        exchange = request.reply_exchange or ""
        routing_key = request.reply_routing_key or ""
        payload = reply_message(
            self.nodename, reply, exchange, routing_key, request.ticket or "", self.clock.forward()
        )
        try:
            if exchange:
                members: set[bytes | str] = await client.smembers(layout.BINDING % exchange)
                queues = layout.direct_routes(members, routing_key)
            else:
                queues = [routing_key]  # the default exchange routes to the queue so named
            if not queues:
                # the asker gave up and deleted its reply queue: nobody to tell (kombu too)
                log.debug("remote control: no queue bound to %s/%s", exchange, routing_key)
                return
            async with client.pipeline(transaction=False) as pipe:
                for queue in queues:
                    pipe.lpush(layout.queue_key(queue), payload)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("remote control: could not answer %s: %s", request.method, exc)
