"""Celery protocol v2 over kombu's Redis transport: reading task messages, writing result metas.

A message on a queue list is kombu's JSON envelope (``body`` base64-encoded per
``properties.body_encoding``, ``content-type``, ``headers`` with the task name and id,
``properties.delivery_tag``); the decoded body is ``[args, kwargs, embed]``. A result is the
JSON document Celery's key-value backends store under ``celery-task-meta-<id>``.

Only JSON is ever decoded: any other content type is refused before its body is looked at.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from celery import states
from celery.utils.nodenames import anon_nodename
from celery.utils.saferepr import saferepr
from celery.utils.serialization import ensure_serializable
from kombu.exceptions import ContentDisallowed, DecodeError
from kombu.serialization import prepare_accept_content
from kombu.utils import json as kombu_json

from poollab.consumer.layout import message_priority, queue_key
from poollab.jobs import SENT_HEADER

ACCEPTED_CONTENT: frozenset[str] = frozenset(
    prepare_accept_content(["json"])  # type: ignore[no-untyped-call]
)
JSON_CONTENT_TYPE = "application/json"
# Celery's defaults for argsrepr and kwargsrepr (amqp.argsrepr_maxsize, task_repr_maxlevels)
_REPR_MAXSIZE = 1024
_REPR_MAXLEVELS = 3


class MalformedMessage(Exception):
    """Not a Celery task message; stored as the task's failure when it has an id."""


_KOMBU_DEFAULT = kombu_json.JSONEncoder().default


def dumps(value: Any) -> str:
    """kombu's JSON: what Celery writes (datetimes, UUIDs, decimals as kombu encodes them).

    The standard encoder with kombu's ``default`` for what JSON lacks: the same text as
    ``kombu.utils.json.dumps`` without building an encoder per call.
    """
    return json.dumps(value, default=_KOMBU_DEFAULT)


def loads(text: str) -> Any:
    """kombu's JSON, so a body decodes to what a Celery worker would hand the task."""
    if '"__type__"' not in text:
        # nothing kombu's object hook would turn into a datetime, UUID, bytes...
        return json.loads(text)
    return kombu_json.loads(text)  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class TaskMessage:
    """What the consumer needs from one task message."""

    task_id: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    headers: Mapping[str, Any]
    delivery_tag: str | None
    sent: float | None = None
    eta: datetime | None = None
    expires: datetime | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    embed: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ignore_result(self) -> bool:
        return bool(self.headers.get("ignore_result"))


class Rejected(Exception):
    """A message the consumer will not run, with what is known of it and why."""

    def __init__(
        self,
        reason: str,
        error: BaseException,
        task_id: str | None = None,
        delivery_tag: str | None = None,
        task: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error
        self.task_id = task_id
        self.delivery_tag = delivery_tag
        self.task = task


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    when = datetime.fromisoformat(value)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _limit(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value)


def envelope_ids(raw: bytes | str) -> tuple[str | None, str | None, str | None]:
    """(task id, delivery tag, task name) of a raw message, or Nones: never raises."""
    try:
        payload = json.loads(raw)
    except (ValueError, TypeError):
        return None, None, None
    if not isinstance(payload, dict):
        return None, None, None
    headers = payload.get("headers")
    props = payload.get("properties")
    task_id = _str_or_none(headers.get("id")) if isinstance(headers, dict) else None
    task = _str_or_none(headers.get("task")) if isinstance(headers, dict) else None
    tag = _str_or_none(props.get("delivery_tag")) if isinstance(props, dict) else None
    return task_id, tag, task


def _decode_body(payload: Mapping[str, Any], props: Mapping[str, Any]) -> Any:
    content_type = payload.get("content-type")
    if content_type not in ACCEPTED_CONTENT:
        raise ContentDisallowed(
            f"Refusing to deserialize untrusted content of type {content_type!r}"
        )
    encoding = payload.get("content-encoding") or "utf-8"
    if str(encoding).lower() not in ("utf-8", "utf8"):
        raise DecodeError(f"unsupported content-encoding {encoding!r}")
    body = payload.get("body")
    if not isinstance(body, str):
        raise DecodeError("message body is not a string")
    body_encoding = props.get("body_encoding")
    if body_encoding == "base64":
        try:
            body = base64.b64decode(body, validate=True).decode("utf-8")
        except (binascii.Error, ValueError) as exc:
            raise DecodeError(f"bad base64 body: {exc}") from None
    elif body_encoding not in (None, "utf-8"):
        raise DecodeError(f"unsupported body_encoding {body_encoding!r}")
    try:
        return loads(body)
    except (ValueError, TypeError) as exc:
        raise DecodeError(f"body is not JSON: {exc}") from None


def parse(raw: bytes | str) -> TaskMessage:
    """Read one message taken from a queue list; raise :class:`Rejected` saying why not."""
    try:
        payload = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise Rejected(f"not JSON: {exc}", MalformedMessage(f"not JSON: {exc}")) from None
    if not isinstance(payload, dict):
        raise Rejected("not a kombu envelope", MalformedMessage("not a kombu envelope"))
    headers = payload.get("headers")
    props = payload.get("properties")
    if not isinstance(headers, dict) or not isinstance(props, dict):
        raise Rejected("no headers or properties", MalformedMessage("no headers or properties"))
    task_id = _str_or_none(headers.get("id"))
    task = _str_or_none(headers.get("task"))
    tag = _str_or_none(props.get("delivery_tag"))

    def reject(reason: str, error: BaseException) -> Rejected:
        return Rejected(reason, error, task_id=task_id, delivery_tag=tag, task=task)

    if task_id is None or task is None:
        # protocol v1 carried these in the body; only v2 is spoken here
        error = MalformedMessage("not a Celery protocol v2 message (no task or id header)")
        raise reject(str(error), error)
    try:
        body = _decode_body(payload, props)
    except (ContentDisallowed, DecodeError) as exc:
        raise reject(str(exc), exc) from None
    if (
        not isinstance(body, list)
        or len(body) != 3
        or not isinstance(body[0], list)
        or not isinstance(body[1], dict)
    ):
        error = MalformedMessage("body is not [args, kwargs, embed]")
        raise reject(str(error), error)
    args, kwargs, embed = body
    sent = headers.get(SENT_HEADER)
    limits = headers.get("timelimit")
    # Celery sends [hard, soft]
    hard, soft = limits if isinstance(limits, list) and len(limits) == 2 else (None, None)
    try:
        eta, expires = _when(headers.get("eta")), _when(headers.get("expires"))
    except ValueError as exc:
        error = MalformedMessage(f"bad eta or expires: {exc}")
        raise reject(str(error), error) from None
    return TaskMessage(
        task_id=task_id,
        task=task,
        args=args,
        kwargs=kwargs,
        headers=headers,
        delivery_tag=tag,
        sent=float(sent) if isinstance(sent, int | float) and not isinstance(sent, bool) else None,
        eta=eta,
        expires=expires,
        time_limit=_limit(hard),
        soft_time_limit=_limit(soft),
        embed=embed if isinstance(embed, dict) else {},
    )


# --- results --------------------------------------------------------------------------


def exception_info(exc: BaseException) -> dict[str, Any]:
    """An exception as Celery's backend stores it for the JSON serializer."""
    exc_type = type(exc)
    return {
        "exc_type": getattr(exc_type, "__qualname__", exc_type.__name__),
        "exc_message": ensure_serializable(exc.args, dumps),
        "exc_module": exc_type.__module__,
    }


def result_meta(
    task_id: str,
    status: str,
    result: Any,
    traceback: str | None = None,
    headers: Mapping[str, Any] | None = None,
) -> str:
    """The JSON Celery's backend writes for a finished task, fields in Celery's order."""
    meta: dict[str, Any] = {
        "status": status,
        "result": result,
        "traceback": traceback,
        "children": [],
        "date_done": datetime.now(UTC).isoformat(),
    }
    if headers:
        if headers.get("group"):
            meta["group_id"] = headers["group"]
        if headers.get("parent_id"):
            meta["parent_id"] = headers["parent_id"]
    meta["task_id"] = task_id
    return dumps(meta)


def success_meta(task_id: str, value: Any, headers: Mapping[str, Any] | None = None) -> str:
    return result_meta(task_id, states.SUCCESS, value, None, headers)


def failure_meta(
    task_id: str,
    exc: BaseException,
    traceback: str | None,
    headers: Mapping[str, Any] | None = None,
    status: str = states.FAILURE,
) -> str:
    return result_meta(task_id, status, exception_info(exc), traceback, headers)


# --- building messages (the producer's publisher, the peer benchmark, tests) ---------------

_EMBED: dict[str, Any] = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def task_message(
    task: str,
    kwargs: Mapping[str, Any] | None = None,
    *,
    queue: str,
    task_id: str | None = None,
    args: list[Any] | None = None,
    headers: Mapping[str, Any] | None = None,
    priority: int = 0,
    sent: float | None = None,
    reply_to: str | None = None,
    origin: str | None = None,
) -> dict[str, Any]:
    """A task message laid out exactly as ``send_task(..., queue=queue)`` puts it on Redis.

    Celery's ``as_task_v2`` headers and properties, kombu's envelope (body base64 of
    ``[args, kwargs, embed]``), ``argsrepr``/``kwargsrepr`` by Celery's own ``saferepr``.
    ``reply_to`` is Celery's ``app.thread_oid`` in ``send_task``; a new one when not given.
    """
    task_id = task_id or str(uuid.uuid4())
    args_list, kwargs_dict = list(args or []), dict(kwargs or {})
    body = json.dumps([args_list, kwargs_dict, _EMBED])
    all_headers: dict[str, Any] = {
        "lang": "py",
        "task": task,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": saferepr(tuple(args_list), _REPR_MAXSIZE, maxlevels=_REPR_MAXLEVELS),
        "kwargsrepr": saferepr(kwargs_dict, _REPR_MAXSIZE, maxlevels=_REPR_MAXLEVELS),
        "origin": origin or anon_nodename(),
        "ignore_result": None,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
        SENT_HEADER: time.time() if sent is None else sent,
    }
    all_headers.update(headers or {})
    return {
        "body": base64.b64encode(body.encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": JSON_CONTENT_TYPE,
        "headers": all_headers,
        "properties": {
            "correlation_id": task_id,
            "reply_to": reply_to or str(uuid.uuid4()),
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": priority,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }


def encode(message: Mapping[str, Any]) -> str:
    return json.dumps(message)


class MessageTemplate:
    """The encoded :func:`task_message` of many jobs of one task, kwargs, queue and priority.

    Built once, by :func:`task_message` itself; :meth:`render` fills in what differs between
    jobs (the task id, which is also ``root_id`` and ``correlation_id``, a new delivery tag,
    and the time sent) with one ``%`` formatting: a few microseconds a message, where
    ``send_task`` takes about a millisecond. :attr:`key` is the list kombu's ``_put``
    LPUSHes it to (the queue, or its priority sub-list).
    """

    def __init__(
        self,
        task: str,
        kwargs: Mapping[str, Any] | None = None,
        *,
        queue: str,
        args: list[Any] | None = None,
        priority: int = 0,
        reply_to: str | None = None,
        origin: str | None = None,
    ) -> None:
        # stand-ins for what differs between jobs: JSON strings no argument can hold by
        # accident (a new nonce per template), replaced by % fields once encoded
        nonce = uuid.uuid4().hex
        id_mark, tag_mark, sent_mark = (f"@@{nonce}-{name}@@" for name in ("id", "tag", "sent"))
        message = task_message(
            task,
            kwargs,
            queue=queue,
            task_id=id_mark,
            args=args,
            priority=priority,
            reply_to=reply_to,
            origin=origin,
        )
        message["headers"][SENT_HEADER] = sent_mark
        message["properties"]["delivery_tag"] = tag_mark
        text = encode(message).replace("%", "%%")
        text = text.replace(f'"{id_mark}"', '"%(id)s"').replace(f'"{tag_mark}"', '"%(tag)s"')
        self._text = text.replace(f'"{sent_mark}"', "%(sent)r")
        self.key = queue_key(queue, message_priority(message))

    def render(self, task_id: str, sent: float) -> str:
        """One job's message; ``sent`` is written as JSON writes a float (its repr)."""
        return self._text % {"id": task_id, "tag": str(uuid.uuid4()), "sent": float(sent)}
