"""``poollab up`` as a user runs it: every service healthy, then stopped with nothing left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import redis

from poollab.launcher import lab as lab_module
from poollab.launcher.redis_server import RedisServer, answers
from tests.conftest import free_ports, service_env

POOLLAB = str(Path(sys.executable).parent / "poollab")


def _wait_for_state(run_dir: Path, process: subprocess.Popen[bytes], timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
        status = subprocess.run(
            [POOLLAB, "status", "--run-dir", str(run_dir), "--json"],
            capture_output=True,
            text=True,
            check=False,
        )
        if status.returncode == 0:
            return dict(json.loads(status.stdout))
        time.sleep(1.0)
    raise AssertionError(f"lab not healthy within {timeout_s} s")


def test_up_starts_every_service_and_sigterm_leaves_no_process_behind(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    env = {**os.environ, **service_env(redis_server.url + "/2")}
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [POOLLAB, "up", "--run-dir", str(run_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        state = _wait_for_state(run_dir, process, timeout_s=120)
        names = {service["name"] for service in state["services"]}
        assert {
            "upstream",
            "producer",
            "worker-prefork",
            "worker-threads",
            "worker-gevent",
            "worker-solo",
            "consumer-asyncio",
            "collector",
            "flower",
        } <= names
        assert all(service["healthy"] for service in state["services"])
        # the whole tree, prefork's pool processes included
        tree = {p.pid for s in state["services"] for p in _tree(s["pid"])}
        assert len(tree) > len(names)

        producer = env["POOLLAB_PRODUCER_PORT"]
        body = json.dumps({"pool": "prefork", "kind": "noop", "params": {"x": 7}}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{producer}/jobs", data=body, method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
            (job_id,) = json.loads(response.read())["ids"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            url = f"http://127.0.0.1:{producer}/jobs/{job_id}"
            with urllib.request.urlopen(url, timeout=10) as response:
                job = json.loads(response.read())
            if job["state"] == "SUCCESS":
                break
            time.sleep(0.2)
        assert job["state"] == "SUCCESS"
        assert job["result"] == 7
        assert job["worker"]["pool"] == "prefork"
        _every_pool_on_the_collector(env)
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=90)[0].decode()
    assert process.returncode == 0, output
    assert "the lab is stopped" in output
    survivors = [pid for pid in tree if psutil.pid_exists(pid) and _not_zombie(pid)]
    assert survivors == [], f"left behind: {survivors}"
    assert not (run_dir / "state.json").exists()


def _metric(text: str, name: str, pool: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and f'pool="{pool}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def _every_pool_on_the_collector(env: dict[str, str]) -> None:
    """The collector `poollab up` runs shows every consumer's memory and completed jobs."""
    pools = ("prefork", "threads", "gevent", "solo", "asyncio")
    producer = f"http://127.0.0.1:{env['POOLLAB_PRODUCER_PORT']}"
    for pool in pools:
        body = json.dumps({"pool": pool, "kind": "noop", "params": {"x": 1}, "count": 3})
        request = urllib.request.Request(f"{producer}/jobs", data=body.encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
    metrics_url = f"http://127.0.0.1:{env['POOLLAB_COLLECTOR_PORT']}/metrics"
    deadline = time.monotonic() + 20.0
    missing: list[str] = list(pools)
    while missing and time.monotonic() < deadline:
        with urllib.request.urlopen(metrics_url, timeout=5) as response:
            text = response.read().decode()
        missing = [
            pool
            for pool in pools
            if not (_metric(text, "poollab_consumer_rss_bytes", pool) or 0) > 0
            or not (_metric(text, "poollab_consumer_uss_bytes", pool) or 0) > 0
            or not (_metric(text, "poollab_jobs_completed_total", pool) or 0) >= 3
        ]
        time.sleep(0.5)
    assert missing == [], f"no memory or completed jobs on /metrics within 20 s for {missing}"


def _tree(pid: int) -> list[psutil.Process]:
    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _not_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_status_without_a_lab_says_so(tmp_path: Path) -> None:
    result = subprocess.run(
        [POOLLAB, "status", "--run-dir", str(tmp_path)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "not running" in result.stderr


def test_up_refuses_a_broker_that_does_not_answer(tmp_path: Path) -> None:
    (dead,) = free_ports(1)
    env = {**os.environ, "POOLLAB_BROKER_URL": f"redis://127.0.0.1:{dead}/0"}
    result = subprocess.run(
        [POOLLAB, "up", "--run-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "no Redis answers" in result.stderr


def test_an_embedded_redis_starts_when_none_is_given_even_if_one_answers(
    redis_server: RedisServer,
) -> None:
    # a Redis answers on this machine (the tests' own), but nobody gave it to the lab
    assert answers(redis_server.url)
    url, server = lab_module.broker_for_local_lab({})
    assert server is not None and url != redis_server.url + "/0"
    try:
        assert answers(url)
        client = redis.Redis.from_url(url)
        client.set("poollab:test", "1")
        assert client.get("poollab:test") == b"1"
        client.close()
    finally:
        server.stop()
    assert not answers(url)


def test_a_given_broker_is_used_as_it_is(redis_server: RedisServer) -> None:
    url, server = lab_module.broker_for_local_lab({"POOLLAB_BROKER_URL": redis_server.url + "/3"})
    assert server is None
    assert url == redis_server.url + "/3"
