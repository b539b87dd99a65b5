"""The lab's services, defined once: name, command, where it listens, how to tell it is healthy.

``poollab up`` runs these commands as local processes; ``docker-compose.yml`` runs the
same commands in containers (a test holds the two together).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from poollab.settings import ALL_POOLS, CELERY_POOLS, PoolName, Settings

CheckKind = Literal["http", "celery-ping", "consumer"]

WORKER_APP = "poollab.worker.app"

# How long a service may take to stop after SIGTERM before its whole process group is killed
# (compose's stop_grace_period, and the same values as docker-compose.yml): consumers finish
# what they run (Celery's warm shutdown, the asyncio consumer's own --grace-s 30), the rest
# only close their sockets.
GRACE_S = 10.0
CONSUMER_GRACE_S = 40.0


@dataclass(frozen=True)
class Service:
    name: str
    argv: tuple[str, ...]
    check: CheckKind
    # what the check probes: a URL for http, a node name for the others
    target: str
    url: str | None = None
    pool: PoolName | None = None
    env: dict[str, str] = field(default_factory=dict)
    # seconds between SIGTERM and SIGKILL of the service's process group
    grace_s: float = GRACE_S
    # stopped after every other service (the upstream: jobs still running call it)
    stop_last: bool = False


def nodename(pool: str, host: str) -> str:
    return f"{pool}@{host}"


def worker_argv(pool: PoolName, concurrency: int, settings: Settings) -> tuple[str, ...]:
    argv = [
        "celery", "-A", WORKER_APP, "worker",
        "-P", pool, "-c", str(concurrency), "-Q", pool,
        "-n", f"{pool}@%h", "--loglevel", "INFO",
    ]  # fmt: skip
    if settings.task_events:
        argv.append("-E")
    return tuple(argv)


def consumer_argv(concurrency: int, loop: str = "uvloop") -> tuple[str, ...]:
    return ("poollab", "consume", "-c", str(concurrency), "--loop", loop, "-n", "asyncio@%h")


def flower_argv(settings: Settings) -> tuple[str, ...]:
    return (
        "celery", "-A", WORKER_APP, "flower",
        "--address=127.0.0.1", f"--port={settings.flower_port}",
    )  # fmt: skip


def build_services(
    settings: Settings,
    host: str,
    pools: tuple[PoolName, ...] = ALL_POOLS,
    concurrency: dict[str, int] | None = None,
    with_flower: bool = True,
    with_collector: bool = True,
) -> list[Service]:
    """Every service of the local lab, in start order (dependencies first)."""
    concurrency = concurrency or {}
    upstream_url = f"http://127.0.0.1:{settings.upstream_port}"
    producer_url = f"http://127.0.0.1:{settings.producer_port}"
    collector_url = f"http://127.0.0.1:{settings.collector_port}"
    services = [
        Service(
            "upstream",
            ("poollab", "serve", "upstream", "--port", str(settings.upstream_port)),
            "http",
            f"{upstream_url}/healthz",
            upstream_url,
            stop_last=True,
        ),
        Service(
            "producer",
            ("poollab", "serve", "producer", "--port", str(settings.producer_port)),
            "http",
            f"{producer_url}/healthz",
            producer_url,
        ),
    ]
    for pool in pools:
        level = concurrency.get(pool, settings.concurrency(pool))
        if pool in CELERY_POOLS:
            services.append(
                Service(
                    f"worker-{pool}",
                    worker_argv(pool, level, settings),
                    "celery-ping",
                    nodename(pool, host),
                    pool=pool,
                    grace_s=CONSUMER_GRACE_S,
                )
            )
        else:
            services.append(
                Service(
                    "consumer-asyncio",
                    consumer_argv(level),
                    "consumer",
                    nodename(pool, host),
                    pool=pool,
                    grace_s=CONSUMER_GRACE_S,
                )
            )
    if with_collector:
        # the live comparison page and /metrics: every consumer's samples, the queues, results
        services.append(
            Service(
                "collector",
                ("poollab", "serve", "collector", "--port", str(settings.collector_port)),
                "http",
                f"{collector_url}/healthz",
                collector_url,
            )
        )
    if with_flower:
        flower_url = f"http://127.0.0.1:{settings.flower_port}"
        services.append(
            Service(
                "flower", flower_argv(settings), "http", f"{flower_url}/healthcheck", flower_url
            )
        )
    return services
