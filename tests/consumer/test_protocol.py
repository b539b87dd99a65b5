"""Reading Celery task messages and writing result metas as Celery's own code does."""

from __future__ import annotations

import base64
import json
import pickle
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from celery import Celery, states
from celery.exceptions import NotRegistered
from kombu.exceptions import ContentDisallowed, DecodeError

from poollab.consumer import protocol
from poollab.jobs import SENT_HEADER, JobError


def _raw(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def _message(**overrides: Any) -> dict[str, Any]:
    message = protocol.task_message("poollab.noop", {"x": 1}, queue="asyncio", sent=12.5)
    message.update(overrides)
    return message


def test_parses_what_celery_send_task_puts_on_redis(redis_url: str, client: Celery) -> None:
    result = client.send_task(
        "poollab.sleep",
        kwargs={"ms": 5},
        queue="asyncio",
        headers={SENT_HEADER: 123.25},
        priority=0,
        time_limit=30,
        soft_time_limit=20,
    )
    raw = redis.Redis.from_url(redis_url).rpop("asyncio")
    assert isinstance(raw, bytes)
    message = protocol.parse(raw)
    assert message.task_id == result.id
    assert message.task == "poollab.sleep"
    assert message.args == [] and message.kwargs == {"ms": 5}
    assert message.sent == 123.25
    assert (
        message.delivery_tag
        and message.delivery_tag == json.loads(raw)["properties"]["delivery_tag"]
    )
    assert (message.soft_time_limit, message.time_limit) == (20.0, 30.0)
    assert message.eta is None and message.expires is None


def test_task_message_has_the_layout_send_task_writes(redis_url: str, client: Celery) -> None:
    client.send_task("poollab.noop", kwargs={"x": 1}, queue="asyncio")
    sent = json.loads(redis.Redis.from_url(redis_url).rpop("asyncio") or b"{}")
    built = protocol.task_message("poollab.noop", {"x": 1}, queue="asyncio")
    assert built.keys() == sent.keys()
    assert set(built["headers"]) - {SENT_HEADER} == set(sent["headers"])
    assert built["properties"].keys() == sent["properties"].keys()
    assert built["properties"]["delivery_info"] == sent["properties"]["delivery_info"]
    assert base64.b64decode(built["body"]) == base64.b64decode(sent["body"])


def test_eta_and_expires_are_read_as_aware_datetimes() -> None:
    message = _message()
    message["headers"].update(eta="2030-01-01T00:00:00+00:00", expires="2030-01-02T00:00:00")
    parsed = protocol.parse(_raw(message))
    assert parsed.eta is not None and parsed.eta.year == 2030 and parsed.eta.tzinfo is not None
    assert parsed.expires is not None and parsed.expires.tzinfo is not None


@pytest.mark.parametrize(
    "raw",
    [b"not json{", b"[1, 2, 3]", b'"a string"', b"{}", b'{"headers": 1, "properties": {}}'],
)
def test_garbage_is_rejected_without_an_id(raw: bytes) -> None:
    with pytest.raises(protocol.Rejected) as caught:
        protocol.parse(raw)
    assert caught.value.task_id is None
    # none of these carries a headers or properties object to read an id from
    assert protocol.envelope_ids(raw) == (None, None, None)


class _Touch:
    """Unpickling this would create a file: the consumer must never do it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


def test_pickle_is_refused_before_its_body_is_read(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    message = _message(
        **{"content-type": "application/x-python-serialize", "content-encoding": "binary"}
    )
    message["body"] = base64.b64encode(pickle.dumps(_Touch(marker))).decode()
    with pytest.raises(protocol.Rejected) as caught:
        protocol.parse(_raw(message))
    assert isinstance(caught.value.error, ContentDisallowed)
    assert caught.value.task_id == message["headers"]["id"]
    assert caught.value.delivery_tag == message["properties"]["delivery_tag"]
    assert not marker.exists()


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("!!!not base64!!!", DecodeError),
        (base64.b64encode(b"not json").decode(), DecodeError),
        (base64.b64encode(b'{"args": []}').decode(), protocol.MalformedMessage),
        (base64.b64encode(b"[[], [], {}]").decode(), protocol.MalformedMessage),
    ],
)
def test_bad_bodies_are_rejected_with_the_task_id(body: str, error: type[Exception]) -> None:
    message = _message(body=body)
    with pytest.raises(protocol.Rejected) as caught:
        protocol.parse(_raw(message))
    assert isinstance(caught.value.error, error)
    assert caught.value.task_id == message["headers"]["id"]


def test_protocol_v1_is_rejected() -> None:
    message = _message()
    del message["headers"]["task"]
    with pytest.raises(protocol.Rejected, match="protocol v2"):
        protocol.parse(_raw(message))


def test_bad_eta_is_rejected() -> None:
    message = _message()
    message["headers"]["eta"] = "next tuesday"
    with pytest.raises(protocol.Rejected, match="eta"):
        protocol.parse(_raw(message))


def test_envelope_ids_never_raise() -> None:
    message = _message()
    raw = _raw(message)
    assert protocol.envelope_ids(raw) == (
        message["headers"]["id"],
        message["properties"]["delivery_tag"],
        "poollab.noop",
    )
    assert protocol.envelope_ids(b"\xff\xfe") == (None, None, None)


def test_success_meta_matches_celerys_backend_field_for_field() -> None:
    app = Celery("meta", backend="redis://127.0.0.1:1/0")
    request = SimpleNamespace(children=[], group=None, parent_id=None)
    expected = app.backend._get_result_meta({"v": 1}, states.SUCCESS, None, request)
    ours = json.loads(protocol.success_meta("id-1", {"v": 1}))
    assert list(ours) == [*expected, "task_id"]
    assert {k: ours[k] for k in ("status", "result", "traceback", "children")} == {
        k: expected[k] for k in ("status", "result", "traceback", "children")
    }
    assert ours["task_id"] == "id-1" and ours["date_done"].endswith("+00:00")


def test_group_and_parent_ids_are_kept_like_celery() -> None:
    meta = json.loads(protocol.success_meta("t", 1, {"group": "g", "parent_id": "p"}))
    assert list(meta)[-3:] == ["group_id", "parent_id", "task_id"]


@pytest.mark.parametrize(
    "exc",
    [
        JobError("ms: too big"),
        NotRegistered("poollab.nope"),
        ContentDisallowed("pickle"),
        ValueError(1, object()),
    ],
)
def test_failures_read_back_as_the_same_exception_in_celery(exc: Exception) -> None:
    app = Celery("meta", backend="redis://127.0.0.1:1/0")
    meta = app.backend.decode(protocol.failure_meta("t", exc, "Traceback: ...").encode())
    assert meta["status"] == states.FAILURE
    assert meta["traceback"] == "Traceback: ..."
    back = app.backend.exception_to_python(meta["result"])
    assert type(back).__name__ == type(exc).__name__
    assert meta["result"]["exc_module"] == type(exc).__module__
    if not isinstance(exc, ValueError):
        assert type(back) is type(exc)
        assert back.args == exc.args
