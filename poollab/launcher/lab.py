"""Start, watch, restart and stop the lab's services as local processes.

Each service runs in a session (process group) of its own. Stopping sends SIGTERM to its
main process, which lets in-flight work finish (Celery's warm shutdown, aiohttp's graceful
exit); a group still there after the service's grace period (``Service.grace_s``) is killed
whole, so a service hung in its shutdown (a gevent worker reconnecting to a Redis that is
gone) cannot hold the lab up. Every service stops at once, the upstream last.

A service that exits while the lab runs is restarted after a delay that doubles with each
quick exit (:meth:`Lab.supervise`). Should the launcher itself die, its services go too: each
main process gets SIGTERM from the kernel (``PR_SET_PDEATHSIG``), and the keeper
(:mod:`poollab.launcher.keeper`), which sees the launcher's end of a pipe close, kills every
group still there after its grace period, then the embedded Redis. Nothing is left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from poollab.backoff import Backoff
from poollab.launcher.health import is_healthy
from poollab.launcher.redis_server import RedisServer, answers
from poollab.launcher.topology import Service
from poollab.settings import Settings
from poollab.stopping import STOP_SIGNALS, signals_ignored

# restarts: the first after 1 s, then twice as long each quick exit, at most 30 s; a service
# that ran for STABLE_S before it exited starts again from the first delay
RESTART_FIRST_S = 1.0
RESTART_CAP_S = 30.0
STABLE_S = 30.0
REDIS_GRACE_S = 10.0


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


_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# looked up once, here: the child side of a fork calls it and nothing else
_PRCTL = _load_prctl()


def _child_setup(launcher_pid: int) -> Callable[[], None]:
    """Runs in the service's process between fork and exec."""

    def setup() -> None:
        # the launcher blocked its stop signals around the fork; the service wants them
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        # SIGTERM when the launcher's spawning (main) thread dies; it survives the exec
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != launcher_pid:  # the launcher died before prctl
            os._exit(1)

    return setup


@dataclass
class Running:
    service: Service
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]
    started_at: float = field(default_factory=time.monotonic)


@dataclass
class Supervision:
    """How often a service was restarted, and when it starts again after an exit."""

    restarts: int = 0
    last_exit: int | None = None
    restart_at: float | None = None
    backoff: Backoff = field(default_factory=lambda: Backoff(RESTART_FIRST_S, RESTART_CAP_S))


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class Lab:
    """A set of services started together and stopped together.

    ``grace_s``, when given, replaces every service's own grace period.
    """

    def __init__(
        self,
        settings: Settings,
        env: dict[str, str],
        run_dir: Path,
        on_event: Callable[[str], None] | None = None,
        grace_s: float | None = None,
    ) -> None:
        self.settings = settings
        self.env = env
        self.run_dir = run_dir
        self.log_dir = run_dir / "logs"
        self.grace_s = grace_s
        self.running: dict[str, Running] = {}
        self.supervision: dict[str, Supervision] = {}
        self.redis: RedisServer | None = None
        self._say = on_event or (lambda _message: None)
        self._keeper: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return socket.gethostname()

    def grace_for(self, service: Service, grace_s: float | None = None) -> float:
        if grace_s is not None:
            return grace_s
        return self.grace_s if self.grace_s is not None else service.grace_s

    def start(self, services: list[Service], timeout_s: float = 60.0) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            if self.redis is not None and self.redis.process is not None:
                self._tell_keeper(f"pid {self.redis.process.pid} {REDIS_GRACE_S}")
            for service in services:
                self._spawn(service)
            self.wait_healthy([s.name for s in services], timeout_s)
        except BaseException:
            self.stop()
            raise
        self.write_state()

    def _spawn(self, service: Service) -> None:
        current = self.running.get(service.name)
        if current is not None and current.process.poll() is None:
            raise LabError(f"{service.name} is already running")
        log_path = self.log_dir / f"{service.name}.log"
        log_file = log_path.open("ab")
        # The kernel's parent-death signal fires when the *thread* that forked ends: only a
        # child of the main thread gets it (the keeper stands in for the others). The stop
        # signals wait until the child is on the books, so a stop during start-up finds it.
        main = _in_main_thread()
        pdeathsig = main and _PRCTL is not None
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS) if main else None
        try:
            try:
                process = subprocess.Popen(
                    resolve_command(service.argv),
                    env={**self.env, **service.env},
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    preexec_fn=_child_setup(os.getpid()) if pdeathsig else None,
                )
            except BaseException:
                log_file.close()
                raise
            self.running[service.name] = Running(service, process, log_path, log_file)
            self.supervision.setdefault(service.name, Supervision())
            grace = self.grace_for(service)
            self._tell_keeper(f"group {process.pid} {grace} {0 if pdeathsig else 1}")
        finally:
            if blocked is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        self._say(f"started {service.name} (pid {process.pid})")
        self.write_state()

    def _tell_keeper(self, line: str) -> None:
        """One line to the keeper, which is started with the first."""
        if self._keeper is None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with (self.log_dir / "keeper.log").open("ab") as log:
                self._keeper = subprocess.Popen(
                    [sys.executable, "-m", "poollab.launcher.keeper"],
                    env=self.env,
                    stdin=subprocess.PIPE,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        if self._keeper.stdin is None or self._keeper.stdin.closed:
            return
        try:
            self._keeper.stdin.write(line.encode() + b"\n")
            self._keeper.stdin.flush()
        except (BrokenPipeError, OSError):
            self._say("the keeper is gone: a launcher that dies now may leave services behind")
            with contextlib.suppress(OSError):
                self._keeper.stdin.close()

    def _dismiss_keeper(self) -> None:
        keeper, self._keeper = self._keeper, None
        if keeper is None:
            return
        if keeper.stdin is not None and not keeper.stdin.closed:
            with contextlib.suppress(OSError):
                keeper.stdin.write(b"done\n")
                keeper.stdin.close()
        try:
            keeper.wait(5.0)
        except subprocess.TimeoutExpired:
            keeper.kill()
            keeper.wait()

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

    def supervise(self) -> None:
        """Restart what exited, each after its backoff delay; call it every fraction of a second."""
        now = time.monotonic()
        for name, run in list(self.running.items()):
            supervision = self.supervision[name]
            if supervision.restart_at is None:
                code = run.process.poll()
                if code is None:
                    continue
                # what the main process left behind (prefork's pool) goes with it
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(run.process.pid, signal.SIGKILL)
                self._tell_keeper(f"forget {run.process.pid}")
                run.log_file.close()
                if now - run.started_at >= STABLE_S:
                    supervision.backoff.reset()
                delay = supervision.backoff.next()
                supervision.last_exit = code
                supervision.restart_at = now + delay
                self._say(
                    f"{name} exited with status {code}; restarting in {delay:.1f} s "
                    f"(log: {run.log_path})"
                )
                self.write_state()
            elif now >= supervision.restart_at:
                supervision.restart_at = None
                supervision.restarts += 1
                self._spawn(run.service)

    def stop_service(self, name: str, grace_s: float | None = None) -> None:
        self._stop_together([name], grace_s)

    def _stop_together(self, names: list[str], grace_s: float | None) -> None:
        """SIGTERM to each main process at once; SIGKILL to each group left at its deadline."""
        runs = [self.running.pop(name) for name in names if name in self.running]
        now = time.monotonic()
        deadlines: dict[str, float] = {}
        for run in runs:
            if run.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    run.process.send_signal(signal.SIGTERM)
            deadlines[run.service.name] = now + self.grace_for(run.service, grace_s)
        pending = list(runs)
        while pending:
            for run in list(pending):
                name, pgid = run.service.name, run.process.pid
                # children (prefork's pool, the consumer's process pool) are in the group
                if run.process.poll() is not None and not _group_alive(pgid):
                    pass
                elif time.monotonic() >= deadlines[name]:
                    grace = self.grace_for(run.service, grace_s)
                    self._say(f"{name} did not stop within {grace:.0f} s; killing its group")
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pgid, signal.SIGKILL)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        run.process.wait(5.0)
                else:
                    continue
                pending.remove(run)
                run.log_file.close()
                self._tell_keeper(f"forget {pgid}")
                self._say(f"stopped {name}")
            if pending:
                time.sleep(0.05)

    def restart(self, service: Service, timeout_s: float = 60.0) -> None:
        self.stop_service(service.name)
        self._spawn(service)
        self.wait_healthy([service.name], timeout_s)
        self.write_state()

    def stop(self, grace_s: float | None = None) -> None:
        """Stop everything, within the longest grace period (plus the upstream's own)."""
        # a second Ctrl-C or SIGTERM must not cut the graceful stop short: it is bounded
        with signals_ignored():
            names = list(reversed(self.running))
            last = [name for name in names if self.running[name].service.stop_last]
            self._stop_together([name for name in names if name not in last], grace_s)
            self._stop_together(last, grace_s)
            if self.redis is not None:
                self.redis.stop()
                self.redis = None
            state = self.run_dir / "state.json"
            with contextlib.suppress(FileNotFoundError):
                state.unlink()
            self._dismiss_keeper()

    def exited(self) -> list[Running]:
        return [run for run in self.running.values() if run.process.poll() is not None]

    def write_state(self) -> None:
        services = []
        for run in self.running.values():
            supervision = self.supervision.get(run.service.name, Supervision())
            services.append(
                {
                    "name": run.service.name,
                    "pid": run.process.pid,
                    "check": run.service.check,
                    "target": run.service.target,
                    "url": run.service.url,
                    "log": str(run.log_path),
                    "grace_s": self.grace_for(run.service),
                    "restarts": supervision.restarts,
                    "last_exit": supervision.last_exit,
                    "restarting": supervision.restart_at is not None,
                }
            )
        state: dict[str, Any] = {
            "launcher_pid": os.getpid(),
            "keeper_pid": self._keeper.pid if self._keeper else None,
            "broker_url": self.settings.broker_url,
            "embedded_redis": self.redis.url if self.redis else None,
            "services": services,
        }
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / "state.json"
        partial = path.with_suffix(".json.partial")
        partial.write_text(json.dumps(state, indent=2))
        partial.replace(path)  # `poollab status` never reads half a file

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
