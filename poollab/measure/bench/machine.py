"""The machine a run was measured on: cores, CPU model, memory, Python and library versions."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import psutil
import redis

LIBRARIES = (
    "celery", "kombu", "billiard", "redis", "hiredis", "gevent", "greenlet",
    "aiohttp", "uvloop", "urllib3", "psutil",
)  # fmt: skip


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, which a container may narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def library_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def redis_version(url: str) -> str:
    client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        info: dict[str, Any] = client.info("server")
        return str(info.get("redis_version", "unknown"))
    except (redis.RedisError, OSError):
        return "unknown"
    finally:
        client.close()


@dataclass(frozen=True)
class Machine:
    """What a run was measured on."""

    # usable: the affinity mask
    cores: int
    logical_cpus: int | None
    cpu_model: str
    memory_mb: int
    os: str
    python: str
    python_implementation: str
    # installed versions of the libraries that shape the figures
    libraries: dict[str, str]
    redis_server: str
    load_average_at_start: list[float]


def describe_machine(broker_url: str) -> Machine:
    return Machine(
        cores=usable_cores(),
        logical_cpus=os.cpu_count(),
        cpu_model=cpu_model(),
        memory_mb=round(psutil.virtual_memory().total / 2**20),
        os=platform.platform(),
        python=sys.version.split()[0],
        python_implementation=platform.python_implementation(),
        libraries=library_versions(),
        redis_server=redis_version(broker_url),
        load_average_at_start=[round(v, 2) for v in os.getloadavg()],
    )
