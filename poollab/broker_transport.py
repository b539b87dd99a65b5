"""kombu's Redis transport with two fixes that keep a worker alive, found by the fault tests.

**A malformed item on a queue is dropped and logged, not fatal.** kombu parses every item it
pops as its JSON envelope before Celery sees it and builds the message from the envelope's
``properties``. Anything else on the list — a string pushed by hand, a truncated write, an
envelope without ``properties`` or with a body that is not base64 — raises out of the
transport into the worker's event loop, which Celery treats as unrecoverable: one ``LPUSH``
stopped every worker consuming that queue (kombu 5.7). Here such an item is logged and
dropped, as Celery already does with a well-formed envelope whose content it refuses (a
pickle, an unknown task). Only the envelope is checked; what is inside it stays Celery's
business (and :class:`poollab.worker.tasks.CheckedRequest`'s).

**A worker that loses Redis while it holds unacknowledged jobs reconnects.** See
:meth:`Channel._connparams`.

**A worker without an event loop sweeps too.** See :meth:`Channel._restore_when_idle`.

:func:`install` makes it the transport of ``redis://`` and ``rediss://`` URLs in this process
(kombu's alias table is global); :func:`poollab.celery_config.make_celery` calls it, so every
Celery app of the lab, its workers and Flower included, uses it. It is installed under the
same scheme rather than named in ``broker_transport`` so that URLs keep reading
``redis://...`` in logs and Flower's broker page still recognises them.
"""

from __future__ import annotations

import json
import logging
import time
from queue import Empty
from typing import Any

import redis
from kombu.transport import TRANSPORT_ALIASES, _transport_cache
from kombu.transport import redis as kombu_redis

log = logging.getLogger(__name__)

# how much of a rejected item the log shows
_SHOWN = 200
# bad items one poll of basic_get skips before it reports the queue empty
_MAX_SKIPPED = 100


def envelope_problem(payload: Any, channel: Any) -> str | None:
    """What makes ``payload`` unusable as a kombu envelope, or None when kombu can take it."""
    if not isinstance(payload, dict):
        return f"not a JSON object but {type(payload).__name__}"
    properties = payload.get("properties")
    if not isinstance(properties, dict):
        return "no 'properties' object"
    tag = properties.get("delivery_tag")
    if not isinstance(tag, str) or not tag:
        return "no 'properties.delivery_tag' string"
    info = properties.get("delivery_info")
    # kombu's ack emulation stores the message under its exchange and routing key
    if not isinstance(info, dict) or "exchange" not in info or "routing_key" not in info:
        return "no 'properties.delivery_info' with 'exchange' and 'routing_key'"
    headers = payload.get("headers")
    if headers is not None and not isinstance(headers, dict):
        return "'headers' is not an object"
    body = payload.get("body")
    if body is not None and not isinstance(body, str):
        return "'body' is not a string"
    if body:
        try:
            channel.decode_body(body, properties.get("body_encoding"))
        except Exception as exc:  # binascii.Error, or an unknown encoding's KeyError
            return f"body does not decode as {properties.get('body_encoding')!r}: {exc!r}"
    return None


def _shown(item: Any) -> str:
    text = repr(item)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


class Channel(kombu_redis.Channel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._saved_connparams: dict[bool, dict[str, Any]] = {}
        self._last_idle_restore = 0.0
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        # When a worker loses Redis, Celery first collects the connection (which detaches
        # the transport from it) and then closes it; closing a channel that still holds
        # unacknowledged messages reconnects to put them back and, with kombu 5.7, fails
        # with AttributeError on the detached connection — an unrecoverable error that
        # stops the worker (found by the fault tests). The acks of jobs that were running
        # during the outage go through the same old channel. With the parameters kept
        # from its first connection, the channel reconnects as before: the ack succeeds
        # once Redis is back, and a failure is a connection error Celery knows to handle.
        if self.connection.client is None:
            saved = self._saved_connparams.get(asynchronous)
            if saved is None:
                raise redis.exceptions.ConnectionError("the broker connection was closed")
            return dict(saved)
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call]
        self._saved_connparams[asynchronous] = dict(params)
        return params

    def _brpop_read(self, **options: Any) -> Any:
        try:
            return super()._brpop_read(**options)  # type: ignore[no-untyped-call]
        except Empty:
            self._restore_when_idle()
            raise
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            # raised by kombu parsing the popped item, before anything was delivered (Celery
            # reports a body it cannot decode as its own DecodeError, never as these); the
            # item is already off the list, so dropping it is all that is left to do
            log.error("dropped a queue item that is not a JSON envelope: %r", exc)
            return None

    def _restore_when_idle(self) -> None:
        """Sweep for messages held past the visibility timeout, at most every restore interval.

        With an event loop (prefork, threads, solo) kombu sweeps on a timer. Without one
        (gevent and eventlet workers, ``drain_events``) it sweeps only in a poll that saw no
        event at all; but a BRPOP is always outstanding and its empty reply (after
        ``brpop_timeout``, 1 s) is an event, which kombu turns into ``Empty`` before reaching
        the sweep. So such a worker swept once at start, never after: the jobs of a worker
        killed while it ran stayed in ``unacked`` until some consumer restarted (found by
        the fault tests, kombu 5.7). Here the empty reply sweeps instead.
        """
        cycle = getattr(self.connection, "cycle", None)
        if getattr(cycle, "_restore_messages_tref", None) is not None:
            return  # an event loop sweeps on its timer
        client = self.connection.client
        options = client.transport_options if client is not None else {}
        interval = float(options.get("unacked_restore_interval", self.unacked_restore_interval))
        now = time.monotonic()
        if now - self._last_idle_restore < interval:
            return
        self._last_idle_restore = now
        try:
            self.qos.restore_visible(
                num=self.unacked_restore_limit, interval=self.unacked_restore_throttle
            )
        except self.connection_errors as exc:
            log.debug("sweep for unacknowledged messages failed: %r; next time", exc)

    def _get(self, queue: Any, timeout: Any = None) -> Any:
        # the polling path (basic_get) parses items the same way; a run of bad items is
        # skipped up to a bound, then the queue looks empty until the next poll
        for _ in range(_MAX_SKIPPED):
            try:
                return super()._get(queue)  # type: ignore[no-untyped-call]
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                log.error("dropped an item of queue %r that is not a JSON envelope: %r", queue, exc)
        raise Empty()


class Transport(kombu_redis.Transport):
    Channel = Channel

    def _deliver(self, message: Any, queue: str) -> None:
        channel = next((c for c in self.channels if c), None)
        problem = envelope_problem(message, channel) if channel is not None else None
        if problem is not None:
            log.error(
                "dropped a malformed message from queue %r (%s): %s",
                queue,
                problem,
                _shown(message),
            )
            return
        super()._deliver(message, queue)  # type: ignore[no-untyped-call]


_SCHEMES = ("redis", "rediss")
_PATH = f"{__name__}:Transport"


def install() -> None:
    """Make this transport the one kombu resolves ``redis://`` and ``rediss://`` URLs to."""
    for scheme in _SCHEMES:
        if TRANSPORT_ALIASES.get(scheme) != _PATH:
            TRANSPORT_ALIASES[scheme] = _PATH
            # a connection made before this call cached kombu's own class
            _transport_cache.pop(scheme, None)
