"""Nothing let in: poisoned and malformed messages on the queues, oversized request bodies.

Every consumer takes messages from Redis lists anyone with access to Redis can push to. A
pickled message is refused without being unpickled (the proof: unpickling this one would
create a file, and no file appears), every malformed message is logged and dropped, and the
consumer goes on to run the next message. The HTTP side: a body announced as too large is
refused from its headers alone, before a byte of it is read.
"""

from __future__ import annotations

import base64
import json
import socket
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from poollab.launcher.redis_server import RedisServer
from poollab.producer.publish import publish
from poollab.settings import ALL_POOLS, CELERY_POOLS
from tests.faults.conftest import FaultLab, make_lab, running, wait_until

pytestmark = pytest.mark.faults


class CreatesAFile:
    """Unpickling this opens (creates) a file: proof that a consumer unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def envelope(pool: str, body: bytes, content_type: str, headers: dict[str, Any]) -> bytes:
    """A kombu message as it sits on a Redis list, with any body, type and headers."""
    return json.dumps(
        {
            "body": base64.b64encode(body).decode(),
            "content-encoding": "utf-8",
            "content-type": content_type,
            "headers": headers,
            "properties": {
                "correlation_id": str(uuid.uuid4()),
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": pool},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
    ).encode()


def task_headers(task: str = "poollab.noop") -> dict[str, Any]:
    return {"lang": "py", "task": task, "id": str(uuid.uuid4())}


def malformed(pool: str) -> list[tuple[bytes, str]]:
    """(raw list item, what a Celery worker logs about it)."""
    args = b'[[], {"x": 1}, {}]'
    return [
        (b"this is not json", "not a JSON envelope"),
        (b"\xff\xfe\x00binary", "not a JSON envelope"),
        (json.dumps([1, 2, 3]).encode(), "not a JSON object but list"),
        (
            json.dumps({"body": "!!!", "properties": {"body_encoding": "base64"}}).encode(),
            "no 'properties.delivery_tag' string",
        ),
        (
            envelope(pool, b"", "application/json", task_headers()).replace(
                b'"body": ""', b'"body": "!!!notbase64"'
            ),
            "body does not decode as 'base64'",
        ),
        (envelope(pool, b"{not json", "application/json", task_headers()), "Can't decode"),
        (envelope(pool, b'"hello"', "application/json", task_headers()), "malformed task message"),
        (
            envelope(pool, args, "application/json", {"lang": "py", "task": "poollab.noop"}),
            "malformed task message",
        ),
        (
            envelope(pool, args, "application/json", task_headers("poollab.rm_rf")),
            "unregistered task of type 'poollab.rm_rf'",
        ),
        (envelope(pool, args, "application/json", {}), "Received and deleted unknown message"),
        (
            envelope(pool, b"!!python/object/apply:os.system ['true']", "application/x-yaml", {}),
            "untrusted content of type yaml",
        ),
    ]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultLab]:
    root: Path = tmp_path_factory.mktemp("bad-input")
    with RedisServer() as server:
        fault_lab = make_lab(root, server.url + "/0", ALL_POOLS, with_producer=True)
        with running(fault_lab):
            yield fault_lab


@pytest.mark.parametrize("pool", ALL_POOLS)
def test_poisoned_and_malformed_messages_are_refused_and_the_next_one_runs(
    lab: FaultLab, pool: str, tmp_path: Path
) -> None:
    service = lab.service_name(pool)
    marker = tmp_path / f"unpickled-by-{pool}"
    log_before = len(lab.log(service))
    poisoned = lab.client.send_task(
        "poollab.noop",
        kwargs={"x": CreatesAFile(marker)},
        queue=pool,
        serializer="pickle",
    ).id
    items = malformed(pool)
    for raw, _ in items:
        lab.db.lpush(pool, raw)
    # sent last on the same list: it runs only if the consumer survived everything before it
    (after,) = publish(lab.client, pool, "noop", {"x": "still here"}, 1)
    metas = lab.wait_results([after], timeout_s=60)

    assert metas.get(after, {}).get("status") == "SUCCESS", lab.log(service)[-4000:]
    assert metas[after]["result"]["value"] == "still here"
    assert not marker.exists(), "the pickled message was unpickled"
    assert lab.alive(service)
    assert lab.db.llen(pool) == 0
    wait_until(lambda: lab.db.hlen("unacked") == 0, "nothing left held", timeout_s=10)
    # the poisoned job never ran: no success stored under its id
    stored = lab.client.backend.get_task_meta(poisoned)
    assert stored["status"] != "SUCCESS"
    log = lab.log(service)[log_before:]
    if pool in CELERY_POOLS:
        assert "Refusing to deserialize untrusted content of type pickle" in log
        for _, logged in items:
            assert logged in log, logged
        assert "Unrecoverable error" not in log
    else:
        assert log.count("rejected") + log.count("dropp") + log.count("ERROR") >= 1


def _raw_request(port: int, head: str, body: bytes = b"", timeout_s: float = 10.0) -> bytes:
    """Send bytes as they are; return the status line, headers and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(head.encode() + body)
        received = b""
        # bounded: a 413 answer is a few hundred bytes
        for _ in range(1000):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
            head_end = received.find(b"\r\n\r\n")
            if head_end < 0:
                continue
            length = 0
            for line in received[:head_end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(received) >= head_end + 4 + length:
                break
        return received


def test_an_oversized_body_is_refused_from_its_content_length_before_it_is_read(
    lab: FaultLab,
) -> None:
    port = lab.settings.producer_port
    # headers announcing 100 MB, and not one byte of body: a server that waited for the body
    # would never answer (the socket times out after 10 s and the test fails)
    head = (
        "POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 100000000\r\n\r\n"
    )
    answer = _raw_request(port, head)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 413"), answer[:300]
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert body["field"] == "body"


def test_a_chunked_body_past_the_limit_is_refused(lab: FaultLab) -> None:
    port = lab.settings.producer_port
    limit = lab.settings.max_body_bytes
    # no Content-Length to refuse it by: the server stops reading at the limit
    chunk = b"x" * 8192
    chunks = b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(limit // 8192 + 2))
    head = (
        "POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    answer = _raw_request(port, head, chunks + b"0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    # the producer is fine afterwards
    status = _raw_request(port, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 200"), status[:300]


def _http(port: int, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        headers={"Content-Type": "application/json"},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_every_bad_field_is_listed_and_booleans_are_not_numbers(lab: FaultLab) -> None:
    port = lab.settings.producer_port
    before = {pool: lab.db.llen(pool) for pool in ALL_POOLS}
    bad = {"pool": "solo", "kind": "io", "params": {"ms": True, "fail_rate": "1"}, "count": True}
    status, error = _http(port, "POST", "/jobs", bad)
    assert status == 422, error
    assert [e["field"] for e in error["errors"]] == ["count", "params.ms", "params.fail_rate"]
    assert error["field"] == "count"
    assert {pool: lab.db.llen(pool) for pool in ALL_POOLS} == before


def test_an_id_never_issued_is_404_while_an_issued_job_is_found_until_its_result(
    lab: FaultLab,
) -> None:
    port = lab.settings.producer_port
    unknown = str(uuid.uuid4())
    status, error = _http(port, "GET", f"/jobs/{unknown}")
    assert (status, error["id"]) == (404, unknown), error
    status, accepted = _http(
        port, "POST", "/jobs", {"pool": "threads", "kind": "noop", "params": {"x": 5}}
    )
    assert status == 202, accepted
    (task_id,) = accepted["ids"]
    status, job = _http(port, "GET", f"/jobs/{task_id}")
    assert status == 200 and job["state"] in ("PENDING", "SUCCESS"), job
    lab.wait_results([task_id], timeout_s=60)
    status, job = _http(port, "GET", f"/jobs/{task_id}")
    assert (status, job["state"], job["result"]) == (200, "SUCCESS", 5), job

    # a message put on a queue by hand was never issued, but once a worker stored a result
    # under its id (Celery records an unregistered task as a failure) it is found by it
    raw = envelope("solo", b"[[], {}, {}]", "application/json", task_headers("poollab.nope"))
    by_hand = json.loads(raw)["headers"]["id"]
    lab.db.lpush("solo", raw)
    assert lab.wait_results([by_hand], timeout_s=60)
    status, job = _http(port, "GET", f"/jobs/{by_hand}")
    assert (status, job["state"]) == (200, "FAILURE"), job
