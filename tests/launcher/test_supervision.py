"""``poollab up`` supervises and always stops: a killed worker is restarted and its job still
runs, a SIGTERM during start-up stops the lab, a worker hung in its shutdown is killed after
its grace period, and a launcher killed outright takes its services with it.

Each test runs a real ``poollab up`` with few pools. "Nothing left behind" is checked on every
process of this machine that carries the lab's (unique) producer port in its environment,
which reaches whatever the lab started, however deep.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis

from poollab.launcher.redis_server import RedisServer
from tests.conftest import service_env
from tests.launcher.test_up import POOLLAB, _wait_for_state

SMALL = {
    "POOLLAB_CONCURRENCY_GEVENT": "3",
    "POOLLAB_CONCURRENCY_ASYNCIO": "3",
    "POOLLAB_CONCURRENCY_PREFORK": "2",
}


def wait_until(condition: Callable[[], Any], what: str, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def lab_processes(env: dict[str, str]) -> list[psutil.Process]:
    """Every live process whose environment is this lab's (launcher, services, their children)."""
    marker = env["POOLLAB_PRODUCER_PORT"]
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("POOLLAB_PRODUCER_PORT") != marker:
                continue
            if process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


class Up:
    """A ``poollab up`` of the test's own; killed with everything it left, whatever happens."""

    def __init__(self, env: dict[str, str], run_dir: Path, *args: str) -> None:
        self.env = env
        self.run_dir = run_dir
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [POOLLAB, "up", "--run-dir", str(run_dir), "--no-flower", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.output = ""

    def producer(self, path: str) -> str:
        return f"http://127.0.0.1:{self.env['POOLLAB_PRODUCER_PORT']}{path}"

    def state(self) -> dict[str, Any]:
        return dict(json.loads((self.run_dir / "state.json").read_text()))

    def pid_of(self, name: str) -> int:
        (pid,) = [s["pid"] for s in self.state()["services"] if s["name"] == name]
        return int(pid)

    def finish(self, timeout_s: float) -> int:
        self.output += self.process.communicate(timeout=timeout_s)[0].decode()
        return self.process.returncode

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        for process in lab_processes(self.env):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                process.kill()


@pytest.fixture
def ups() -> Iterator[list[Up]]:
    started: list[Up] = []
    yield started
    for up in started:
        up.cleanup()


def post_jobs(up: Up, pool: str, kind: str, params: dict[str, Any], count: int) -> list[str]:
    body = json.dumps({"pool": pool, "kind": kind, "params": params, "count": count}).encode()
    request = urllib.request.Request(up.producer("/jobs"), data=body, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
        return list(json.loads(response.read())["ids"])


def job_state(up: Up, job_id: str) -> str:
    with urllib.request.urlopen(up.producer(f"/jobs/{job_id}"), timeout=10) as response:
        return str(json.loads(response.read())["state"])


def status_json(up: Up) -> tuple[int, dict[str, Any]]:
    result = subprocess.run(
        [POOLLAB, "status", "--run-dir", str(up.run_dir), "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return result.returncode, dict(json.loads(result.stdout))


def test_a_killed_worker_is_restarted_and_a_lab_without_redis_stops_within_its_grace(
    tmp_path: Path, ups: list[Up]
) -> None:
    """SIGKILL of the solo worker: restarted with its count in `poollab status`, and its job
    (held, unacknowledged) runs after the visibility timeout. Then Redis goes away and the
    lab gets SIGTERM: the gevent worker hangs in its reconnect loop, and is killed at its
    grace period; the whole lab is gone within grace + a margin."""
    grace_s = 3.0
    server = RedisServer().start()
    try:
        env = {
            **os.environ,
            **service_env(server.url + "/0"),
            **SMALL,
            "POOLLAB_VISIBILITY_TIMEOUT": "3",
            "POOLLAB_RESTORE_INTERVAL_S": "1",
        }
        up = Up(env, tmp_path / "run", "--pools", "solo,gevent", "--grace", str(grace_s))
        ups.append(up)
        _wait_for_state(up.run_dir, up.process, timeout_s=120)
        killed = up.pid_of("worker-solo")
        ids = post_jobs(up, "solo", "sleep", {"ms": 1000}, 3)
        db = redis.Redis.from_url(server.url + "/0")
        wait_until(lambda: db.hlen("unacked") >= 1, "the solo worker holds a job", 30)
        os.kill(killed, signal.SIGKILL)

        def restarted() -> dict[str, Any] | None:
            code, status = status_json(up)
            (solo,) = [s for s in status["services"] if s["name"] == "worker-solo"]
            return solo if code == 0 and solo["restarts"] == 1 else None

        solo = wait_until(restarted, "worker-solo restarted and healthy", 60)
        assert solo["pid"] != killed and solo["healthy"] and solo["last_exit"] == -9
        wait_until(lambda: all(job_state(up, i) == "SUCCESS" for i in ids), "every job SUCCESS", 60)
        # the result is stored before the acknowledgement
        wait_until(lambda: db.hlen("unacked") == 0, "every job acknowledged", 10)
        db.close()
        assert lab_processes(env)

        server.stop()  # Redis gone: once a worker is reconnecting, its warm shutdown hangs
        gevent_log = up.run_dir / "logs" / "worker-gevent.log"
        wait_until(
            lambda: "(2/None)" in gevent_log.read_text(errors="replace"),
            "the gevent worker reconnecting",
            30,
        )
        began = time.monotonic()
        up.process.send_signal(signal.SIGTERM)
        assert up.finish(timeout_s=grace_s + 30) == 0, up.output
        took = time.monotonic() - began
    finally:
        server.stop()
    assert "the lab is stopped" in up.output
    assert "worker-solo exited with status -9; restarting in 1.0 s" in up.output
    assert "worker-gevent did not stop within 3 s; killing its group" in up.output
    assert took < grace_s + 8, f"stopped in {took:.1f} s\n{up.output}"
    wait_until(lambda: not lab_processes(env), "nothing of the lab left", 5)
    print(f"stopped in {took:.1f} s without Redis")


def test_sigterm_during_start_up_stops_everything_promptly(
    redis_server: RedisServer, tmp_path: Path, ups: list[Up]
) -> None:
    """Once the producer answers but before the workers do: the stop must not wait."""
    env = {**os.environ, **service_env(redis_server.url + "/4"), **SMALL}
    up = Up(env, tmp_path / "run", "--pools", "solo,asyncio", "--grace", "5")
    ups.append(up)

    def producer_up() -> bool:
        assert up.process.poll() is None
        try:
            with urllib.request.urlopen(up.producer("/healthz"), timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    wait_until(producer_up, "the producer answers", 60)
    began = time.monotonic()
    up.process.send_signal(signal.SIGTERM)
    assert up.finish(timeout_s=60) == 0, up.output
    took = time.monotonic() - began
    assert "the lab is stopped" in up.output
    assert "The lab is up" not in up.output
    assert took < 15, f"stopped in {took:.1f} s\n{up.output}"
    wait_until(lambda: not lab_processes(env), "nothing of the lab left", 5)
    assert not (up.run_dir / "state.json").exists()
    print(f"stopped in {took:.1f} s during start-up")


def test_a_killed_launcher_takes_every_process_of_its_lab_with_it(
    tmp_path: Path, ups: list[Up]
) -> None:
    """SIGKILL of `poollab up` (embedded Redis, prefork's pool, the consumer's process pool):
    no process of the lab is left and its ports are free, within the grace period + a margin."""
    grace_s = 5.0
    env = {**os.environ, **service_env("unused"), **SMALL}
    del env["POOLLAB_BROKER_URL"]  # the lab's own, embedded Redis
    up = Up(env, tmp_path / "run", "--pools", "prefork,asyncio", "--grace", str(grace_s))
    ups.append(up)
    state = _wait_for_state(up.run_dir, up.process, timeout_s=120)
    redis_port = int(state["broker_url"].rsplit(":", 1)[1].split("/")[0])
    ports = [int(env[f"POOLLAB_{name}_PORT"]) for name in ("PRODUCER", "UPSTREAM", "COLLECTOR")]
    ports.append(redis_port)
    assert not any(port_free(port) for port in ports)
    # the services' own children: prefork's pool, the consumer's forkserver and process pool
    services = {s["pid"] for s in state["services"]}
    launcher = psutil.Process(up.process.pid)
    deeper = [p for p in launcher.children(recursive=True) if p.ppid() in services]
    assert len(deeper) >= 3, deeper

    began = time.monotonic()
    up.process.kill()
    up.process.wait(10)
    wait_until(lambda: not lab_processes(env), "no process of the lab left", grace_s + 15)
    took = time.monotonic() - began
    assert all(port_free(port) for port in ports)
    keeper_log = (up.run_dir / "logs" / "keeper.log").read_text()
    print(f"everything gone {took:.1f} s after the launcher's SIGKILL\n{keeper_log}")
