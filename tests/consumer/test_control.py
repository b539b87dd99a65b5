"""Celery's remote control reaches the asyncio consumer: ``celery inspect``, Flower's pages.

The reply shapes are checked on their own first; then one consumer subprocess on its own
database of the tests' Redis answers a real Celery client, the ``celery`` command line and a
real Flower.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from celery import Celery
from kombu.transport.redis import Channel as RedisChannel

from poollab import jobs
from poollab.consumer import control, layout, protocol
from poollab.consumer.broker import Taken
from poollab.consumer.config import ConsumerConfig
from poollab.consumer.consumer import Stats, _Job
from poollab.launcher.redis_server import free_port
from poollab.settings import Settings
from tests.consumer.conftest import (
    ConsumerProcess,
    module_consumer,
)

NODE = f"asyncio@{socket.gethostname()}"
CELERY = str(Path(sys.executable).parent / "celery")
FLOWER_AUTH = ("lab", "control-test")


# --- reply shapes, without Redis ------------------------------------------------------------


def _commands(jobs_: dict[Any, _Job] | None = None) -> control.Commands:
    config = ConsumerConfig(nodename="asyncio@unit", concurrency=7, cpu_executor="inline")
    settings = Settings(broker_url="redis://:s3cret@127.0.0.1:6390/3")
    stats = Stats(processed=3)
    stats.by_task["poollab.noop"] += 3
    return control.Commands(config, settings, config.info(settings), stats, jobs_ or {})


def _job(started: bool, eta: datetime | None = None, **kwargs: Any) -> _Job:
    message = protocol.task_message(
        "poollab.sleep",
        kwargs or {"ms": 5},
        queue="asyncio",
        headers={"eta": eta.isoformat()} if eta else None,
        priority=3,
    )
    raw = protocol.encode(message).encode()
    return _Job(Taken(raw, True), started=started, started_at=123.5 if started else None)


def _request(body: dict[str, Any], **headers: Any) -> bytes:
    """A pidbox message laid out as kombu's Mailbox publishes it on Redis."""
    envelope = {
        "body": base64.b64encode(json.dumps(body).encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"clock": 4, **headers},
        "properties": {
            "delivery_mode": 2,
            "delivery_info": {"exchange": layout.PIDBOX_EXCHANGE, "routing_key": ""},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(envelope).encode()


def test_the_pidbox_channel_is_the_one_kombu_publishes_broadcasts_on() -> None:
    channel = SimpleNamespace(keyprefix_fanout="/5.", fanout_patterns=True)
    expected = RedisChannel._get_publish_topic(channel, "celery.pidbox", "")
    assert layout.pidbox_topic(5) == expected == "/5.celery.pidbox"
    assert layout.PIDBOX_REPLY_EXCHANGE == "reply.celery.pidbox"


def test_direct_routes_read_kombus_binding_members() -> None:
    members = [
        layout.binding_member("oid-1.reply.celery.pidbox", "oid-1").encode(),
        layout.binding_member("oid-2.reply.celery.pidbox", "oid-2").encode(),
    ]
    assert layout.direct_routes(members, "oid-1") == ["oid-1.reply.celery.pidbox"]
    assert layout.direct_routes(members, "nobody") == []


def test_ping_stats_and_conf_have_celerys_shapes() -> None:
    commands = _commands({object(): _job(started=True)})
    assert commands.dispatch("ping", {}) == {"ok": "pong"}
    stats = commands.dispatch("stats", {})
    assert stats["pid"] == os.getpid()
    assert stats["pool"]["max-concurrency"] == 7
    assert stats["pool"]["processes"] == [os.getpid()]
    assert stats["pool"]["running"] == 1
    assert stats["total"] == {"poollab.noop": 3}
    assert stats["prefetch_count"] == 7
    assert {"utime", "stime", "maxrss"} <= set(stats["rusage"])
    assert stats["broker"]["port"] == 6390 and stats["broker"]["transport"] == "redis"
    assert "password" not in stats["broker"] and "s3cret" not in json.dumps(stats)
    assert isinstance(stats["clock"], str) and isinstance(stats["uptime"], int)
    conf = commands.dispatch("conf", {"with_defaults": False})
    assert conf["broker_url"] == "redis://:********@127.0.0.1:6390/3"
    assert conf["worker_concurrency"] == 7 and conf["task_acks_late"] is True
    # every reply goes out as JSON
    json.dumps([stats, conf])


def test_active_reserved_and_scheduled_split_the_held_jobs() -> None:
    running, waiting = _job(started=True), _job(started=False)
    later = _job(started=False, eta=datetime.now(UTC) + timedelta(minutes=5))
    commands = _commands({object(): running, object(): waiting, object(): later})
    ids = {
        name: protocol.envelope_ids(job.taken.raw)[0]
        for name, job in (("running", running), ("waiting", waiting), ("later", later))
    }

    [active] = commands.dispatch("active", {"safe": None})
    assert active["id"] == ids["running"]
    assert active["name"] == active["type"] == "poollab.sleep"
    assert active["args"] == [] and active["kwargs"] == {"ms": 5}
    assert active["hostname"] == "asyncio@unit" and active["worker_pid"] == os.getpid()
    assert active["time_start"] == 123.5 and active["acknowledged"] is False
    assert active["delivery_info"] == {
        "exchange": "",
        "routing_key": "asyncio",
        "priority": 3,
        "redelivered": False,
    }
    [safe] = commands.dispatch("active", {"safe": True})
    assert safe["args"] == "()" and safe["kwargs"] == "{'ms': 5}"

    assert [r["id"] for r in commands.dispatch("reserved", {})] == [ids["waiting"]]
    [scheduled] = commands.dispatch("scheduled", {})
    assert scheduled["request"]["id"] == ids["later"] and scheduled["priority"] == 3
    assert datetime.fromisoformat(scheduled["eta"]) > datetime.now(UTC)

    states = commands.dispatch("query_task", {"ids": list(ids.values())})
    assert {task_id: state for task_id, (state, _) in states.items()} == {
        ids["running"]: "active",
        ids["waiting"]: "reserved",
        ids["later"]: "scheduled",
    }


def test_a_job_being_rejected_is_left_out() -> None:
    bad = _Job(Taken(b"not json", False), started=False)
    assert _commands({object(): bad}).dispatch("reserved", {}) == []


def test_registered_revoked_queues_and_errors() -> None:
    commands = _commands()
    assert commands.dispatch("registered", {"taskinfoitems": None}) == sorted(jobs.TASK_NAMES)
    assert commands.dispatch("dump_tasks", {}) == sorted(jobs.TASK_NAMES)
    assert commands.dispatch("revoked", {}) == []
    [queue] = commands.dispatch("active_queues", {})
    assert queue["name"] == queue["routing_key"] == "asyncio"
    assert queue["exchange"]["type"] == "direct"
    unknown = commands.dispatch("shutdown", {})
    assert set(unknown) == {"error"} and "'shutdown'" in unknown["error"]
    assert "ping" in unknown["error"]
    # a handler given arguments it does not know answers an error, not an exception
    assert "error" in commands.dispatch("query_task", {"ids": 5})
    assert commands.dispatch("hello", {"from_node": "asyncio@unit"}) is None
    assert commands.dispatch("hello", {"from_node": "w@x", "revoked": []})["revoked"] == []


def test_requests_are_read_and_addressed_as_kombus_node_does() -> None:
    request = control.parse_request(
        _request(
            {
                "method": "stats",
                "arguments": {},
                "destination": None,
                "pattern": None,
                "matcher": None,
                "ticket": "t-1",
                "reply_to": {"exchange": "reply.celery.pidbox", "routing_key": "oid"},
            },
            expires=time.time() + 1,
        )
    )
    assert request.method == "stats" and request.wants_reply and request.clock == 4
    assert control.addressed_to(request, "anyone@host")
    assert not control.expired(request)

    def addressed(**body: Any) -> bool:
        parsed = control.parse_request(_request({"method": "ping", "arguments": {}, **body}))
        return control.addressed_to(parsed, "asyncio@h1")

    assert addressed(destination=["asyncio@h1", "w@h2"])
    assert not addressed(destination=["w@h2"])
    assert addressed(pattern="asyncio@*", matcher="glob")
    assert not addressed(pattern="w@*", matcher="glob")
    assert not addressed(pattern="x", matcher="no-such-matcher")
    cast = control.parse_request(_request({"method": "revoke", "arguments": {}}))
    assert not cast.wants_reply


def test_expired_and_malformed_requests() -> None:
    past = control.parse_request(
        _request({"method": "ping", "arguments": {}}, expires=time.time() - 30)
    )
    assert control.expired(past)
    # a clock a little ahead of the asker's does not drop its requests
    assert not control.expired(past, now=past.expires)  # type: ignore[arg-type]
    with pytest.raises(control.BadRequest):
        control.parse_request(b"[1, 2]")
    pickled = json.loads(_request({"method": "ping"}))
    pickled["content-type"] = "application/x-python-serialize"
    with pytest.raises(control.BadRequest, match="untrusted"):
        control.parse_request(json.dumps(pickled))


def test_a_reply_is_a_kombu_message_for_the_reply_exchange() -> None:
    raw = control.reply_message("asyncio@h", {"ok": "pong"}, "reply.celery.pidbox", "oid", "t", 9)
    message = json.loads(raw)
    assert json.loads(base64.b64decode(message["body"])) == {"asyncio@h": {"ok": "pong"}}
    assert message["headers"] == {"ticket": "t", "clock": 9}
    assert message["content-type"] == "application/json"
    assert message["properties"]["delivery_info"] == {
        "exchange": "reply.celery.pidbox",
        "routing_key": "oid",
    }


# --- a consumer subprocess answering real clients ---------------------------------------------


@pytest.fixture(scope="module")
def consumer(
    shared_db: str, upstream_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConsumerProcess]:
    log_dir = tmp_path_factory.mktemp("control")
    with module_consumer(
        shared_db, upstream_url, log_dir, "-c", "20", "--cpu-executor", "inline", nodename=NODE
    ) as process:
        yield process


def _env(consumer: ConsumerProcess) -> dict[str, str]:
    return {**os.environ, "POOLLAB_BROKER_URL": consumer.settings.broker_url}


def _inspect(app: Celery, timeout: float = 5.0) -> Any:
    # with a destination the client returns as soon as the one node answered
    return app.control.inspect(destination=[NODE], timeout=timeout)


def wait_for(check: Callable[[], Any], what: str, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_celery_inspect_ping_lists_the_consumer(consumer: ConsumerProcess) -> None:
    done = subprocess.run(
        [CELERY, "-A", "poollab.worker.app", "inspect", "ping", "--timeout", "3"],
        env=_env(consumer),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{NODE}: OK" in done.stdout and "pong" in done.stdout


def test_inspect_stats_and_registered(app: Celery, consumer: ConsumerProcess) -> None:
    app.send_task("poollab.noop", kwargs={"x": 1}, queue="asyncio").get(timeout=30)
    stats = _inspect(app).stats()[NODE]
    assert stats["pid"] == consumer.process.pid
    assert stats["pool"]["max-concurrency"] == 20
    assert stats["total"]["poollab.noop"] >= 1
    assert stats["broker"]["transport"] == "redis"
    assert _inspect(app).registered() == {NODE: sorted(jobs.TASK_NAMES)}
    [queue] = _inspect(app).active_queues()[NODE]
    assert queue["name"] == "asyncio"


def test_active_shows_a_running_job(app: Celery, consumer: ConsumerProcess) -> None:
    result = app.send_task("poollab.sleep", kwargs={"ms": 4000}, queue="asyncio")

    def running() -> list[dict[str, Any]]:
        return [t for t in _inspect(app).active()[NODE] if t["id"] == result.id]

    [task] = wait_for(running, "the job in active()")
    assert task["name"] == "poollab.sleep" and task["kwargs"] == {"ms": 4000}
    assert task["hostname"] == NODE and task["worker_pid"] == consumer.process.pid
    assert task["time_start"] == pytest.approx(time.time(), abs=10)
    assert task["delivery_info"]["routing_key"] == "asyncio"
    assert _inspect(app).query_task(result.id)[NODE][result.id][0] == "active"
    result.get(timeout=30)
    assert not running()


def test_scheduled_reserved_revoked_and_conf(app: Celery) -> None:
    later = app.send_task("poollab.noop", kwargs={"x": 2}, queue="asyncio", countdown=300)
    scheduled = wait_for(lambda: _inspect(app).scheduled()[NODE], "the job in scheduled()")
    assert [s["request"]["id"] for s in scheduled] == [later.id]
    assert _inspect(app).reserved() == {NODE: []}
    assert _inspect(app).revoked() == {NODE: []}
    conf = _inspect(app).conf()[NODE]
    assert conf["worker_concurrency"] == 20 and conf["task_serializer"] == "json"


def test_a_request_for_another_node_gets_no_reply(app: Celery) -> None:
    assert app.control.inspect(destination=["celery@elsewhere"], timeout=1.5).ping() is None
    assert app.control.ping(destination=[NODE], timeout=5) == [{NODE: {"ok": "pong"}}]


def test_an_unknown_command_gets_an_error_reply(app: Celery) -> None:
    [reply] = app.control.broadcast("no_such_command", reply=True, destination=[NODE], timeout=5)
    assert "no_such_command" in reply[NODE]["error"]


def test_an_expired_request_is_not_answered(app: Celery) -> None:
    with app.connection_for_write() as conn:
        mailbox = app.control.mailbox(conn)
        channel = conn.default_channel

        def ask(timeout: float) -> list[Any]:
            ticket = str(uuid.uuid4())
            # kombu stamps the request with expires = now + timeout, by the asker's clock
            mailbox._publish(
                "ping", {}, destination=[NODE], reply_ticket=ticket, channel=channel,
                timeout=timeout,
            )  # fmt: skip
            replies: list[Any] = mailbox._collect(ticket, limit=1, timeout=3, channel=channel)
            return replies

        assert ask(timeout=-30) == []
        assert ask(timeout=5) == [{NODE: {"ok": "pong"}}]


# --- Flower ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flower(consumer: ConsumerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = {**_env(consumer), "FLOWER_BASIC_AUTH": ":".join(FLOWER_AUTH)}
    log_path = tmp_path_factory.mktemp("flower") / "flower.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [CELERY, "-A", "poollab.worker.app", "flower", f"--port={port}", "--address=127.0.0.1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _get(f"{url}/healthcheck")[0] == 200, "Flower's healthcheck", 60)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _get(url: str, timeout_s: float = 30.0) -> tuple[int, str]:
    request = urllib.request.Request(url)
    token = base64.b64encode(":".join(FLOWER_AUTH).encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError:
        return 0, ""


def test_flower_api_lists_the_consumer_with_stats_and_tasks(flower: str) -> None:
    def listed() -> dict[str, Any] | None:
        status, body = _get(f"{flower}/api/workers?refresh=1")
        if status != 200:
            return None
        worker: dict[str, Any] | None = json.loads(body).get(NODE)
        return worker if worker and "stats" in worker and "registered" in worker else None

    worker = wait_for(listed, f"{NODE} in /api/workers", 60)
    assert worker["stats"]["pool"]["max-concurrency"] == 20
    assert worker["registered"] == sorted(jobs.TASK_NAMES)
    assert worker["active_queues"][0]["name"] == "asyncio"


def test_flower_worker_page_renders(flower: str) -> None:
    status, body = _get(f"{flower}/worker/{NODE}")
    assert status == 200, body[:2000]
    assert "Unknown worker" not in body
    assert NODE in body and "poollab.sleep" in body
    status, body = _get(f"{flower}/api/workers?workername={NODE}&refresh=1")
    assert status == 200
    worker = json.loads(body)[NODE]
    for method in ("stats", "active", "reserved", "scheduled", "revoked", "conf"):
        assert method in worker, method


# --- last: it drops every subscription on the tests' Redis -----------------------------------


def test_listening_resumes_after_the_connection_is_killed(
    app: Celery, consumer: ConsumerProcess
) -> None:
    probe = redis.Redis.from_url(consumer.settings.broker_url)
    try:
        assert probe.client_kill_filter(_type="pubsub") >= 1
    finally:
        probe.close()
    wait_for(
        lambda: app.control.ping(destination=[NODE], timeout=1),
        "a ping answered after the kill",
    )
