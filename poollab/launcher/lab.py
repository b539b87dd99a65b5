"""Start, watch and stop the lab's services as local processes.

Each service runs in a session (process group) of its own: stopping sends SIGTERM to its
main process, which lets in-flight work finish (Celery's warm shutdown, aiohttp's
graceful exit), and only a group that is still there after the grace period is killed.
Nothing is left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from poollab.launcher.health import is_healthy
from poollab.launcher.redis_server import RedisServer, answers
from poollab.launcher.topology import Service
from poollab.settings import Settings


class LabError(RuntimeError):
    pass


def resolve_command(argv: tuple[str, ...]) -> list[str]:
    """Run ``poollab`` and ``celery`` from this interpreter's environment, not whatever PATH has."""
    beside = Path(sys.executable).parent / argv[0]
    if beside.exists():
        return [str(beside), *argv[1:]]
    found = shutil.which(argv[0])
    if found is None:
        raise LabError(f"command not found: {argv[0]}")
    return [found, *argv[1:]]


def broker_for_local_lab(environ: dict[str, str]) -> tuple[str, RedisServer | None]:
    """The broker URL the lab uses: the one given, or an embedded Redis of its own.

    A Redis found running on this machine is never used uninvited: the lab purges queues and
    keeps keys there, and that server may hold someone else's data.
    """
    given = environ.get("POOLLAB_BROKER_URL")
    if given:
        if not answers(given):
            raise LabError(f"no Redis answers at POOLLAB_BROKER_URL={given}")
        return given, None
    server = RedisServer().start()
    return server.url + "/0", server


@dataclass
class Running:
    service: Service
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Lab:
    """A set of services started together and stopped together."""

    def __init__(
        self,
        settings: Settings,
        env: dict[str, str],
        run_dir: Path,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.env = env
        self.run_dir = run_dir
        self.log_dir = run_dir / "logs"
        self.running: dict[str, Running] = {}
        self.redis: RedisServer | None = None
        self._say = on_event or (lambda _message: None)

    @property
    def host(self) -> str:
        return socket.gethostname()

    def start(self, services: list[Service], timeout_s: float = 60.0) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for service in services:
                self._spawn(service)
            self.wait_healthy([s.name for s in services], timeout_s)
        except BaseException:
            self.stop()
            raise
        self.write_state()

    def _spawn(self, service: Service) -> None:
        if service.name in self.running:
            raise LabError(f"{service.name} is already running")
        log_path = self.log_dir / f"{service.name}.log"
        log_file = log_path.open("ab")
        process = subprocess.Popen(
            resolve_command(service.argv),
            env={**self.env, **service.env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.running[service.name] = Running(service, process, log_path, log_file)
        self._say(f"started {service.name} (pid {process.pid})")

    def wait_healthy(self, names: list[str], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pending = list(names)
        while pending:
            for name in list(pending):
                run = self.running[name]
                if run.process.poll() is not None:
                    raise LabError(
                        f"{name} exited with status {run.process.returncode}; "
                        f"last lines of {run.log_path}:\n{tail(run.log_path)}"
                    )
                if is_healthy(run.service, self.settings):
                    pending.remove(name)
                    self._say(f"{name} is healthy")
            if pending and time.monotonic() > deadline:
                raise LabError(f"not healthy after {timeout_s:.0f} s: {', '.join(pending)}")
            if pending:
                time.sleep(0.2)

    def stop_service(self, name: str, grace_s: float = 30.0) -> None:
        run = self.running.pop(name, None)
        if run is None:
            return
        pgid = run.process.pid
        if run.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                run.process.send_signal(signal.SIGTERM)
            try:
                run.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                self._say(f"{name} did not stop within {grace_s:.0f} s; killing it")
        # children (prefork's pool processes) go with their parent's group
        deadline = time.monotonic() + 5.0
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _group_alive(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            run.process.wait(5.0)
        run.log_file.close()
        self._say(f"stopped {name}")

    def restart(self, service: Service, timeout_s: float = 60.0) -> None:
        self.stop_service(service.name)
        self._spawn(service)
        self.wait_healthy([service.name], timeout_s)
        self.write_state()

    def stop(self, grace_s: float = 30.0) -> None:
        for name in reversed(list(self.running)):
            self.stop_service(name, grace_s)
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        state = self.run_dir / "state.json"
        with contextlib.suppress(FileNotFoundError):
            state.unlink()

    def exited(self) -> list[Running]:
        return [run for run in self.running.values() if run.process.poll() is not None]

    def write_state(self) -> None:
        state: dict[str, Any] = {
            "launcher_pid": os.getpid(),
            "broker_url": self.settings.broker_url,
            "embedded_redis": self.redis.url if self.redis else None,
            "services": [
                {
                    "name": run.service.name,
                    "pid": run.process.pid,
                    "check": run.service.check,
                    "target": run.service.target,
                    "url": run.service.url,
                    "log": str(run.log_path),
                }
                for run in self.running.values()
            ],
        }
        (self.run_dir / "state.json").write_text(json.dumps(state, indent=2))

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
