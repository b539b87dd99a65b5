"""A user job module written into a test's directory, as a user would write one.

The lab's processes import it through ``POOLLAB_JOBS`` and ``PYTHONPATH``
(:func:`user_env`). Its jobs cover the happy path (sync and async) and the safety cases: one
raises, one hangs past the time limit, one returns what JSON cannot encode, one leaks.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from poollab.launcher.lab import Lab
from poollab.launcher.topology import build_services
from poollab.settings import PoolName, Settings
from tests.conftest import service_env

JOBS = '''
"""Test jobs: written by tests/user_module.py."""
import asyncio
import os
import time

_HELD = []


def add(a, b=1):
    return {"sum": a + b, "pid": os.getpid()}


async def add_async(a, b=1):
    await asyncio.sleep(0.01)
    return {"sum": a + b, "pid": os.getpid()}


def boom(message):
    raise RuntimeError(message)


def hang(s):
    time.sleep(s)
    return s


async def hang_async(s):
    await asyncio.sleep(s)
    return s


def raw():
    return b"not json"


def die():
    # only for the asyncio consumer's process executor: a prefork child that exits is
    # "worker lost", and its job goes back to the queue (task_reject_on_worker_lost)
    os._exit(3)


def leak(kb):
    _HELD.append(b"\x01" * (kb * 1024))
    return len(_HELD)
'''

# a module that must never be imported by a request naming it: importing it leaves a mark
TRAP = """
from pathlib import Path
Path(__file__).with_suffix(".imported").write_text("imported")

def steal():
    return "should never run"
"""

# soft and hard time limits of the user jobs in the tests' labs, in seconds
SOFT_LIMIT_S = 2.0
HARD_LIMIT_S = 4.0


def write_modules(directory: Path, name: str = "testjobs", trap: str = "trapjobs") -> Path:
    """``<name>.py`` (the jobs) and ``<trap>.py`` (the trap) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.py").write_text(JOBS)
    (directory / f"{trap}.py").write_text(TRAP)
    return directory


def trap_imported(directory: Path, trap: str = "trapjobs") -> bool:
    return (directory / f"{trap}.imported").exists()


def user_env(env: dict[str, str], directory: Path, modules: str = "testjobs") -> dict[str, str]:
    """``env`` with POOLLAB_JOBS, the directory on PYTHONPATH, and the user jobs' time limits."""
    path = [str(directory), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    return {
        **env,
        "POOLLAB_JOBS": modules,
        "PYTHONPATH": os.pathsep.join(path),
        "POOLLAB_SOFT_TIME_LIMIT_S_BY_KIND": f'{{"user": {SOFT_LIMIT_S}}}',
        "POOLLAB_TIME_LIMIT_S_BY_KIND": f'{{"user": {HARD_LIMIT_S}}}',
    }


@contextlib.contextmanager
def start_user_lab(
    broker_url: str,
    jobs_dir: Path,
    run_dir: Path,
    pools: tuple[PoolName, ...],
    extra_env: dict[str, str] | None = None,
) -> Iterator[Lab]:
    """Upstream, producer and a consumer per pool, as real processes, with the user jobs."""
    ports = service_env(broker_url)
    env = {**user_env({**os.environ, **ports}, jobs_dir), **(extra_env or {})}
    # the services read their settings from env; this process needs only where they are
    fields: dict[str, Any] = {k.removeprefix("POOLLAB_").lower(): v for k, v in ports.items()}
    settings = Settings(**fields)
    lab = Lab(settings, env, run_dir)
    services = build_services(
        settings,
        socket.gethostname(),
        pools,
        concurrency={"threads": 4, "gevent": 10, "asyncio": 10},
        with_flower=False,
        with_collector=False,
    )
    lab.start(services, timeout_s=120)
    try:
        yield lab
    finally:
        lab.stop()
