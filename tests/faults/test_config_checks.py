"""The settings and configuration the fault handling rests on, checked without processes."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from poollab import jobs
from poollab.broker_transport import Channel, Transport, envelope_problem
from poollab.celery_config import make_celery, make_client
from poollab.settings import Settings
from poollab.worker import tasks

pytestmark = pytest.mark.faults


class _Codecs:
    decode_body = Channel.decode_body
    codecs = Channel.codecs


def _envelope(**changes: Any) -> dict[str, Any]:
    body = base64.b64encode(json.dumps([[], {"x": 1}, {}]).encode()).decode()
    envelope: dict[str, Any] = {
        "body": body,
        "content-type": "application/json",
        "content-encoding": "utf-8",
        "headers": {"task": "poollab.noop", "id": "a"},
        "properties": {
            "delivery_tag": "t",
            "body_encoding": "base64",
            "delivery_info": {"exchange": "", "routing_key": "solo"},
        },
    }
    envelope.update(changes)
    return envelope


def test_a_well_formed_envelope_passes_and_each_defect_is_named() -> None:
    codecs = _Codecs()
    assert envelope_problem(_envelope(), codecs) is None
    assert "list" in str(envelope_problem([1, 2], codecs))
    assert "properties" in str(envelope_problem(_envelope(properties=None), codecs))
    no_tag = _envelope()
    del no_tag["properties"]["delivery_tag"]
    assert "delivery_tag" in str(envelope_problem(no_tag, codecs))
    no_route = _envelope()
    no_route["properties"]["delivery_info"] = {}
    assert "delivery_info" in str(envelope_problem(no_route, codecs))
    assert "headers" in str(envelope_problem(_envelope(headers=[1]), codecs))
    assert "base64" in str(envelope_problem(_envelope(body="!!!notbase64"), codecs))
    assert "string" in str(envelope_problem(_envelope(body=123), codecs))


def test_every_celery_app_of_the_lab_uses_the_guarded_transport() -> None:
    app = make_celery("check", Settings(broker_url="redis://127.0.0.1:1/0"))
    connection = app.connection_for_write()
    assert connection.transport_cls == "redis"  # the URL still reads redis://
    assert isinstance(connection.transport, Transport)
    assert connection.as_uri().startswith("redis://")


def test_workers_retry_storing_results_and_clients_fail_fast() -> None:
    settings = Settings(broker_url="redis://127.0.0.1:1/0", restore_interval_s=7)
    worker = make_celery("check", settings)
    client = make_client("check", settings)
    assert worker.conf.result_backend_always_retry is True
    assert client.conf.result_backend_always_retry is False
    assert worker.conf.broker_connection_max_retries is None
    options = worker.conf.broker_transport_options
    assert options["unacked_restore_interval"] == 7
    assert options["unacked_restore_throttle"] == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"retry_kinds": "io,teleport"}, "unknown job kinds"),
        ({"time_limit_s_by_kind": {"cpu_heavy": 5}}, "unknown job kinds"),
        ({"soft_time_limit_s_by_kind": {"io": 10}, "time_limit_s_by_kind": {"io": 10}}, "below"),
        ({"soft_time_limit_s": 300.0, "time_limit_s": 270.0}, "below"),
    ],
)
def test_settings_that_would_not_do_what_they_say_are_refused(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        tasks._check_settings(Settings(**changes))


def test_time_limits_and_retries_become_task_options() -> None:
    settings = Settings(
        soft_time_limit_s_by_kind={"cpu": 0},
        time_limit_s_by_kind={"cpu": 5},
        retry_kinds="io",
        max_retries=4,
        retry_backoff_s=2,
        retry_jitter=False,
    )
    tasks._check_settings(settings)
    cpu = tasks._task_options(jobs.CATALOGUE["cpu"], settings)
    assert cpu["soft_time_limit"] is None and cpu["time_limit"] == 5
    assert "autoretry_for" not in cpu
    io = tasks._task_options(jobs.CATALOGUE["io"], settings)
    assert io["soft_time_limit"] == 240 and io["time_limit"] == 270
    assert io["autoretry_for"] == tasks.RETRY_ON
    assert (io["max_retries"], io["retry_backoff"], io["retry_jitter"]) == (4, 2, False)
