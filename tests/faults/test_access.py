"""Access: the lab with every lock on at once, from the environment only.

A Redis that requires a password (``POOLLAB_BROKER_URL=redis://:PASSWORD@host:port/0``), the
producer with ``POOLLAB_API_TOKEN`` (bearer token) and Flower with ``FLOWER_BASIC_AUTH``:
a job goes through end to end, every door refuses a caller without credentials, and the
health checks stay open (the launcher's own checks are what started this lab).
"""

from __future__ import annotations

import base64
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from poollab.launcher.redis_server import RedisServer, answers
from tests.faults.conftest import FaultLab, make_lab, running

pytestmark = pytest.mark.faults

REDIS_PASSWORD = "redis-pw-7f3a"
API_TOKEN = "api-token-0c9e"
FLOWER_USER, FLOWER_PASSWORD = "lab", "flower-pw-51d2"


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FaultLab, RedisServer]]:
    root: Path = tmp_path_factory.mktemp("access")
    with RedisServer(password=REDIS_PASSWORD) as server:
        env = {
            "POOLLAB_API_TOKEN": API_TOKEN,
            "FLOWER_BASIC_AUTH": f"{FLOWER_USER}:{FLOWER_PASSWORD}",
        }
        fault_lab = make_lab(
            root, server.url + "/0", ("solo",), env, with_producer=True, with_flower=True
        )
        with running(fault_lab):
            yield fault_lab, server


def call(
    url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        method=method,
        data=data,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


BEARER = {"Authorization": f"Bearer {API_TOKEN}"}


def test_redis_refuses_a_client_without_the_password(
    locked: tuple[FaultLab, RedisServer],
) -> None:
    _, server = locked
    assert answers(server.url + "/0")
    assert not answers(f"redis://127.0.0.1:{server.port}/0")
    assert not answers(f"redis://:wrong@127.0.0.1:{server.port}/0")


def test_a_job_goes_through_a_password_redis_with_the_token(
    locked: tuple[FaultLab, RedisServer],
) -> None:
    lab, _ = locked
    base = f"http://127.0.0.1:{lab.settings.producer_port}"
    job = {"pool": "solo", "kind": "noop", "params": {"x": "through"}, "count": 1}
    status, _, body = call(f"{base}/jobs", "POST", job, BEARER)
    assert status == 202, body
    (task_id,) = json.loads(body)["ids"]
    deadline = time.monotonic() + 60
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status, _, body = call(f"{base}/jobs/{task_id}", headers=BEARER)
        assert status == 200, body
        state = json.loads(body)
        if state["state"] == "SUCCESS":
            break
        time.sleep(0.2)
    assert state["state"] == "SUCCESS" and state["result"] == "through", state


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {API_TOKEN}"},
        {"Authorization": API_TOKEN},
        {"Authorization": "Bearer"},
    ],
    ids=["none", "wrong", "basic-scheme", "no-scheme", "empty"],
)
def test_the_producer_refuses_without_the_token_with_401_json(
    locked: tuple[FaultLab, RedisServer], headers: dict[str, str]
) -> None:
    lab, _ = locked
    base = f"http://127.0.0.1:{lab.settings.producer_port}"
    job = {"pool": "solo", "kind": "noop", "count": 1}
    queued_before = lab.db.llen("solo")
    for url, method, body in (
        (f"{base}/jobs", "POST", job),
        (f"{base}/jobs/00000000-0000-0000-0000-000000000000", "GET", None),
        (f"{base}/openapi.json", "GET", None),
        (f"{base}/no-such-path", "GET", None),
    ):
        status, answer_headers, answer = call(url, method, body, headers)
        assert status == 401, (url, status, answer)
        assert answer_headers["WWW-Authenticate"].startswith("Bearer")
        assert json.loads(answer)["error"] == "unauthorized"
    assert lab.db.llen("solo") == queued_before  # nothing was published


def test_the_producer_health_check_needs_no_token(locked: tuple[FaultLab, RedisServer]) -> None:
    lab, _ = locked
    status, _, body = call(f"http://127.0.0.1:{lab.settings.producer_port}/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"


def test_an_unauthenticated_body_is_never_read(locked: tuple[FaultLab, RedisServer]) -> None:
    lab, _ = locked
    # 10 MB announced, none sent: the 401 comes from the headers alone
    head = (
        "POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 10000000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", lab.settings.producer_port), timeout=10) as sock:
        sock.sendall(head.encode())
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def test_flower_needs_its_basic_auth_but_its_health_check_does_not(
    locked: tuple[FaultLab, RedisServer],
) -> None:
    lab, _ = locked
    base = f"http://127.0.0.1:{lab.settings.flower_port}"
    good = base64.b64encode(f"{FLOWER_USER}:{FLOWER_PASSWORD}".encode()).decode()
    bad = base64.b64encode(f"{FLOWER_USER}:wrong".encode()).decode()
    for path in ("/", "/api/workers", "/tasks"):
        assert call(base + path)[0] == 401, path
        assert call(base + path, headers={"Authorization": f"Basic {bad}"})[0] == 401, path
        assert call(base + path, headers={"Authorization": f"Basic {good}"})[0] == 200, path
    status, _, body = call(base + "/healthcheck")
    assert status == 200 and body == b"OK"
