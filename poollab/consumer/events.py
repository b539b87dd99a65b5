"""Celery events as Celery's EventDispatcher sends them, so Flower lists this consumer.

An event is :func:`celery.events.event.Event` with the dispatcher's fields (hostname,
utcoffset, pid, Lamport clock), wrapped in a kombu message for the ``celeryev`` exchange,
which on Redis is a fanout exchange: a PUBLISH on ``/{db}.celeryev/<routing key>``.
Task events are buffered and sent as ``task.multi`` batches, as a Celery worker running
an event loop does (``buffer_group=['task']``); the writer sends them in the pipeline it
sends results in, so events cost no round trip of their own.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import time
import uuid
from collections.abc import Callable
from importlib import metadata
from itertools import count
from typing import Any

from celery.events.event import Event, group_from
from celery.utils.sysinfo import load_average
from celery.utils.time import utcoffset

from poollab.consumer import layout
from poollab.consumer.protocol import dumps

SW_IDENT = "poollab-asyncio"


def _version() -> str:
    try:
        return metadata.version("poollab")
    except metadata.PackageNotFoundError:
        return "0"


SW_VER = _version()
# a task.multi message carries at most this many events (Celery's buffer_limit is 24)
MULTI_LIMIT = 200
HEARTBEAT_FREQ = 2.0


class EventDispatcher:
    """Builds event messages; task events wait in a buffer the writer drains."""

    def __init__(
        self,
        hostname: str,
        db: int,
        task_events: bool,
        extra: dict[str, Any] | None = None,
        on_buffered: Callable[[], None] | None = None,
    ) -> None:
        self.hostname = hostname
        self.db = db
        self.task_events = task_events
        self.pid = os.getpid()
        self.extra = dict(extra or {})
        self.on_buffered = on_buffered
        self._clock = count(1)
        self._buffer: list[dict[str, Any]] = []
        # refreshed with every worker event: it only changes with daylight saving time
        self._utcoffset = utcoffset()

    def _event(self, type_: str, **fields: Any) -> dict[str, Any]:
        self._utcoffset = utcoffset()
        event: dict[str, Any] = Event(
            type_,
            hostname=self.hostname,
            utcoffset=self._utcoffset,
            pid=self.pid,
            clock=next(self._clock),
            **fields,
        )
        return event

    def message(self, body: Any, routing_key: str) -> tuple[str, str]:
        """(channel, payload) of one kombu message on the event exchange."""
        encoded = base64.b64encode(dumps(body).encode()).decode()
        payload = json.dumps(
            {
                "body": encoded,
                "content-encoding": "utf-8",
                "content-type": "application/json",
                "headers": {"hostname": self.hostname},
                "properties": {
                    "delivery_mode": 1,
                    "delivery_info": {
                        "exchange": layout.EVENT_EXCHANGE,
                        "routing_key": routing_key,
                    },
                    "priority": 0,
                    "body_encoding": "base64",
                    "delivery_tag": str(uuid.uuid4()),
                },
            }
        )
        return layout.event_topic(self.db, routing_key), payload

    # --- worker events: sent at once -----------------------------------------------------

    def worker(self, type_: str, active: int, processed: int) -> tuple[str, str]:
        event = self._event(
            type_,
            freq=HEARTBEAT_FREQ,
            active=active,
            processed=processed,
            loadavg=load_average(),
            sw_ident=SW_IDENT,
            sw_ver=SW_VER,
            sw_sys=platform.system(),
            **self.extra,
        )
        return self.message(event, type_.replace("-", "."))

    # --- task events: buffered -----------------------------------------------------------

    def task(self, type_: str, uuid_: str, **fields: Any) -> None:
        if not self.task_events:
            return
        # Event()'s layout, built inline: three of these per job make it worth it
        event = {
            "hostname": self.hostname,
            "utcoffset": self._utcoffset,
            "pid": self.pid,
            "clock": next(self._clock),
            "uuid": uuid_,
        }
        event.update(fields)
        event["timestamp"] = time.time()
        event["type"] = type_
        self._buffer.append(event)
        if self.on_buffered is not None:
            self.on_buffered()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def drain(self) -> list[tuple[str, str]]:
        """Every buffered task event as ``task.multi`` messages, oldest first."""
        if not self._buffer:
            return []
        buffered, self._buffer = self._buffer, []
        group = group_from(buffered[0]["type"])
        return [
            self.message(buffered[i : i + MULTI_LIMIT], f"{group}.multi")
            for i in range(0, len(buffered), MULTI_LIMIT)
        ]
