"""Labs of real processes on a real Redis for the fault tests, and how runs are counted.

Counting runs: every lab's consumers write the run journal (``POOLLAB_RUN_JOURNAL``,
:mod:`poollab.hooks.journal`): a ``start`` line each time a job begins to run and a
``stored`` line each time its result is written, with the task id, from the process that ran
it. A job that was lost has no ``stored`` line; a job that ran to its end twice has two.
:meth:`FaultLab.journal` reads it back into counts per id (:class:`RunCounts`). Nothing
test-only is added to the job catalogue, and a duplicate cannot hide behind the result key,
which a second run simply overwrites.

:class:`Runs` counts from the Celery workers' log lines instead (``Task poollab.<kind>[<id>]
received`` / ``succeeded`` / ``retry:`` / ``raised``): retries and failures, which the
journal does not tell apart.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from poollab.celery_config import make_client
from poollab.hooks.journal import read_journal
from poollab.launcher.lab import Lab
from poollab.launcher.redis_server import RedisServer
from poollab.launcher.topology import Service, build_services
from poollab.measure.collect import collect
from poollab.settings import PoolName, Settings
from tests.conftest import service_env

# small pools: a kill then hits every job a worker holds, and startup stays cheap
SMALL_CONCURRENCY = {
    "POOLLAB_CONCURRENCY_PREFORK": "2",
    "POOLLAB_CONCURRENCY_THREADS": "3",
    "POOLLAB_CONCURRENCY_GEVENT": "3",
    "POOLLAB_CONCURRENCY_ASYNCIO": "3",
}

JOURNAL_VAR = "POOLLAB_RUN_JOURNAL"

_RUN_LINE = re.compile(r"Task poollab\.\w+\[([0-9a-f-]{36})\] (received|succeeded|retry:|raised)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: fault injection on real Redis and real worker processes"
    )


@dataclass
class Runs:
    """Per job id, from a worker's log: deliveries, runs to the end, retries, failures."""

    received: Counter[str]
    succeeded: Counter[str]
    retried: Counter[str]
    raised: Counter[str]

    @classmethod
    def parse(cls, text: str) -> Runs:
        counts: dict[str, Counter[str]] = {
            "received": Counter(),
            "succeeded": Counter(),
            "retry:": Counter(),
            "raised": Counter(),
        }
        for task_id, what in _RUN_LINE.findall(text):
            counts[what][task_id] += 1
        return cls(counts["received"], counts["succeeded"], counts["retry:"], counts["raised"])


@dataclass
class RunCounts:
    """Per job id, from the run journal: runs begun, results stored, and the processes."""

    started: Counter[str]
    stored: Counter[str]
    # the pids that began each job, in order
    pids: dict[str, list[int]]

    @classmethod
    def read(cls, path: Path) -> RunCounts:
        started: Counter[str] = Counter()
        stored: Counter[str] = Counter()
        pids: dict[str, list[int]] = {}
        for line in read_journal(path):
            if line.event == "start":
                started[line.task_id] += 1
                pids.setdefault(line.task_id, []).append(line.pid)
            else:
                stored[line.task_id] += 1
        return cls(started, stored, pids)


def wait_until(
    check: Callable[[], bool],
    what: str,
    timeout_s: float = 30.0,
    explain: Callable[[], str] | None = None,
) -> None:
    """Wait for ``check`` (bounded); ``explain`` says what was seen instead when it times out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    seen = f"; {explain()}" if explain is not None else ""
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}{seen}")


def settings_from(env: dict[str, str]) -> Settings:
    """The settings these POOLLAB_* variables give, as the lab's processes will read them
    (keyword arguments are not JSON-decoded as variables are, hence the loads)."""
    values: dict[str, Any] = {}
    for key, value in env.items():
        if key.startswith("POOLLAB_"):
            values[key.removeprefix("POOLLAB_").lower()] = (
                json.loads(value) if value.startswith("{") else value
            )
    return Settings(**values)


@dataclass
class FaultLab:
    """A :class:`Lab` plus what the fault tests do to it."""

    lab: Lab
    services: list[Service]
    env: dict[str, str]
    settings: Settings
    client: Celery
    db: redis.Redis

    def start(self, timeout_s: float = 120.0) -> None:
        self.lab.start(self.services, timeout_s)

    @staticmethod
    def service_name(pool: str) -> str:
        return "consumer-asyncio" if pool == "asyncio" else f"worker-{pool}"

    def log(self, name: str) -> str:
        path = self.lab.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def runs(self, pool: str) -> Runs:
        return Runs.parse(self.log(self.service_name(pool)))

    @property
    def journal_path(self) -> Path:
        return Path(self.env[JOURNAL_VAR])

    def journal(self) -> RunCounts:
        """Runs per job id, as the lab's consumers wrote them (every consumer of the lab)."""
        return RunCounts.read(self.journal_path)

    def pid(self, name: str) -> int:
        return self.lab.running[name].process.pid

    def kill(self, name: str) -> None:
        """SIGKILL to the service's whole process group, as the OOM killer or a container
        runtime stopping it hard would: nothing runs on the way out, children included."""
        run = self.lab.running[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.process.pid, signal.SIGKILL)
        run.process.wait(10)

    def restart(self, name: str, **env: str) -> None:
        """Start the service again; ``env``: variables that differ from then on."""
        service = self.lab.running[name].service
        if env:
            service = dataclasses.replace(service, env={**service.env, **env})
        self.lab.restart(service, timeout_s=90)

    def alive(self, name: str) -> bool:
        return self.lab.running[name].process.poll() is None

    def wait_results(self, ids: list[str], timeout_s: float) -> dict[str, dict[str, Any]]:
        """The results of these jobs as they finish; those missing after the timeout are left
        out (the caller's count of missing ones is the assertion)."""
        return collect(self.client.backend.client, ids, timeout_s, interval_s=0.1).metas


def make_lab(
    tmp_path: Path,
    broker_url: str,
    pools: tuple[PoolName, ...],
    extra_env: dict[str, str] | None = None,
    with_upstream: bool = False,
    with_producer: bool = False,
    with_flower: bool = False,
    name: str = "lab",
) -> FaultLab:
    env = {
        **os.environ,
        **service_env(broker_url),
        **SMALL_CONCURRENCY,
        JOURNAL_VAR: str(tmp_path / name / "runs.journal"),
        **(extra_env or {}),
    }
    settings = settings_from(env)
    wanted = {"upstream": with_upstream, "producer": with_producer, "flower": with_flower}
    services: list[Service] = [
        s
        for s in build_services(
            settings, _host(), pools, with_flower=with_flower, with_collector=False
        )
        if wanted.get(s.name, True)
    ]
    return FaultLab(
        Lab(settings, env, tmp_path / name),
        services,
        env,
        settings,
        make_client("fault-tests", settings),
        redis.Redis.from_url(broker_url),
    )


def start_labs(labs: list[FaultLab], timeout_s: float = 120.0) -> None:
    """Start several labs at once: their workers' start-up (imports, mingle) overlaps."""
    with ThreadPoolExecutor(max_workers=len(labs)) as pool:
        futures = [pool.submit(f.start, timeout_s) for f in labs]
        errors = [exc for fut in futures if (exc := fut.exception()) is not None]
    if errors:
        stop_labs(labs)
        raise errors[0]


def stop_labs(labs: list[FaultLab]) -> None:
    """Stop every service of these labs at once: each warm shutdown takes a second or two,
    and one after the other they would add up to most of a module's run time."""
    services = [(f.lab, name) for f in labs for name in list(f.lab.running)]
    if services:
        with ThreadPoolExecutor(max_workers=len(services)) as pool:
            for lab, name in services:
                pool.submit(lab.stop_service, name, 10.0)
    for fault_lab in labs:
        fault_lab.lab.stop(grace_s=10)  # what is left: state file, an embedded Redis
        fault_lab.client.close()
        fault_lab.db.close()


@contextlib.contextmanager
def running(*labs: FaultLab) -> Iterator[None]:
    start_labs(list(labs))
    try:
        yield
    finally:
        stop_labs(list(labs))


def _host() -> str:
    import socket

    return socket.gethostname()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test alone: the unacknowledged-message hash is per database, and the
    fault tests must see only their own."""
    with RedisServer() as server:
        yield server
