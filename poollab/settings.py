"""Settings from the environment (prefix ``POOLLAB_``); defaults work on one machine."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PoolName = Literal["prefork", "threads", "gevent", "solo", "asyncio"]
CELERY_POOLS: tuple[PoolName, ...] = ("prefork", "threads", "gevent", "solo")
ALL_POOLS: tuple[PoolName, ...] = (*CELERY_POOLS, "asyncio")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POOLLAB_", extra="ignore")

    broker_url: str = "redis://127.0.0.1:6379/0"
    # empty: the same Redis as the broker
    result_backend: str = ""
    upstream_url: str = "http://127.0.0.1:8001"

    producer_host: str = "127.0.0.1"
    producer_port: int = 8000
    upstream_host: str = "127.0.0.1"
    upstream_port: int = 8001
    collector_port: int = 8002
    flower_port: int = 5555

    # per-pool concurrency (-c) the launcher gives each worker
    concurrency_prefork: int = Field(2, ge=1, le=512)
    concurrency_threads: int = Field(16, ge=1, le=2048)
    concurrency_gevent: int = Field(100, ge=1, le=10000)
    concurrency_solo: int = Field(1, ge=1, le=1)
    concurrency_asyncio: int = Field(100, ge=1, le=10000)

    prefetch_multiplier: int = Field(1, ge=0, le=1000)
    # seconds before an unacknowledged message (its worker died) is delivered again; keep it
    # above the longest job (time_limit_s), or a job still running is delivered a second time
    visibility_timeout: int = Field(300, ge=1)
    # seconds between a worker's sweeps for messages unacknowledged past the visibility
    # timeout (kombu's default sweeps every 100 s: 10 s interval, every 10th call)
    restore_interval_s: int = Field(10, ge=1, le=3600)
    # time limits of every job, in seconds: the soft one raises SoftTimeLimitExceeded in the
    # job, the hard one kills it (prefork: both; gevent: the hard one only; threads and solo
    # cannot interrupt a job). The soft one must be below the hard one; 0 turns it off.
    # Per kind: POOLLAB_SOFT_TIME_LIMIT_S_BY_KIND='{"io": 5}', POOLLAB_TIME_LIMIT_S_BY_KIND.
    soft_time_limit_s: float = Field(240.0, ge=0)
    time_limit_s: float = Field(270.0, gt=0)
    soft_time_limit_s_by_kind: dict[str, float] = Field(default_factory=dict)
    time_limit_s_by_kind: dict[str, float] = Field(default_factory=dict)
    # job kinds retried on failure (comma-separated, e.g. "io,mixed"), with exponential
    # backoff: retry n waits retry_backoff_s × 2**n seconds (at most retry_backoff_max_s;
    # with jitter, a random share of that)
    retry_kinds: str = ""
    max_retries: int = Field(3, ge=0, le=100)
    retry_backoff_s: int = Field(1, ge=1, le=3600)
    retry_backoff_max_s: int = Field(60, ge=1, le=86400)
    retry_jitter: bool = True
    # how many times a worker retries storing a result while Redis is unreachable (each try
    # itself retries for ~20 s; between tries it waits up to 10 s)
    result_backend_max_retries: int = Field(30, ge=0, le=10_000)
    # durability of an accepted job (docs/faults.md, "Broker crash"). The fsync policy of the
    # Redis the lab starts with an append-only file (tests, docker-compose.yml): "always"
    # answers a write only once it is on disk, "everysec" can lose the last second of
    # writes to a crash of the machine.
    redis_appendfsync: Literal["always", "everysec", "no"] = "always"
    # > 0: publishing (POST /jobs, `poollab submit`) waits up to this many ms for Redis to
    # confirm the jobs are fsynced to its append-only file (WAITAOF 1 0 ms, Redis >= 7.2
    # with appendonly yes) and answers 503 when it cannot; 0: no confirmation asked
    publish_waitaof_ms: int = Field(0, ge=0, le=60_000)
    # producer API: when set, every request but /healthz needs "Authorization: Bearer TOKEN"
    api_token: SecretStr = SecretStr("")
    # seconds results stay in Redis
    result_expires: int = Field(3600, ge=1)
    # connections each process may open to Redis (broker and result backend, each)
    redis_max_connections: int = Field(2048, ge=10)
    # Flower needs task events; they cost one publish per state change
    task_events: bool = True

    # the user's own job modules (comma-separated, importable from the working directory,
    # PYTHONPATH or an installed package): every public function in them becomes the task
    # poollab.user.<module>.<function> on every consumer and in the producer (poollab.userjobs)
    jobs: str = ""
    # > 0: a prefork child whose resident memory passed this many KiB after a job is
    # replaced by a new one (Celery's worker_max_memory_per_child; prefork only): a job that
    # leaks cannot grow a worker without bound. 0: never.
    max_memory_per_child_kb: int = Field(0, ge=0)

    # caps on what one request may ask for: bad input is refused, not queued
    max_count: int = Field(10_000, ge=1)
    max_cpu_n: int = Field(50_000_000, ge=1)
    max_ms: int = Field(60_000, ge=0)
    max_body_bytes: int = Field(64 * 1024, ge=1024)

    def concurrency(self, pool: PoolName) -> int:
        value: int = getattr(self, f"concurrency_{pool}")
        return value

    @property
    def result_backend_url(self) -> str:
        return self.result_backend or self.broker_url

    def time_limits(self, kind: str) -> tuple[float, float]:
        """(soft, hard) time limit in seconds of one job kind."""
        soft = self.soft_time_limit_s_by_kind.get(kind, self.soft_time_limit_s)
        hard = self.time_limit_s_by_kind.get(kind, self.time_limit_s)
        return soft, hard

    def retried_kinds(self) -> frozenset[str]:
        return frozenset(k.strip() for k in self.retry_kinds.split(",") if k.strip())


# where `poollab up` keeps its state (the broker it started, its services), from the
# directory it was started in
LAB_STATE = Path(".poollab") / "state.json"


def running_lab_state(state_path: Path = LAB_STATE) -> dict[str, Any] | None:
    """The state file of the `poollab up` that wrote it, if that launcher still runs."""
    try:
        state = json.loads(state_path.read_text())
        os.kill(int(state["launcher_pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if isinstance(state, dict) else None


def running_lab_broker(state_path: Path = LAB_STATE) -> str | None:
    """The broker of the `poollab up` running from this directory, if one runs."""
    state = running_lab_state(state_path)
    return str(state["broker_url"]) if state and "broker_url" in state else None


class NoBrokerError(RuntimeError):
    """A client of the lab was given no broker and found no running lab."""


def lab_client_settings() -> Settings:
    """The settings of a command that talks to a running lab (submit, load, Locust's users).

    Its broker is POOLLAB_BROKER_URL or the running `poollab up`'s; never the default address,
    where a Redis that is not the lab's may answer.
    """
    if "POOLLAB_BROKER_URL" not in os.environ and running_lab_broker() is None:
        raise NoBrokerError(
            "no broker: start the lab here (`poollab up`) or set POOLLAB_BROKER_URL to its Redis"
        )
    return get_settings()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings from the environment; without POOLLAB_BROKER_URL, the running lab's broker.

    `poollab up` starts a Redis of its own on a free port when it is given none, so the
    commands run beside it (submit, load, bench against the lab) find that Redis through
    the lab's state file rather than a Redis that happens to answer on the default port.
    """
    if "POOLLAB_BROKER_URL" not in os.environ and (broker := running_lab_broker()) is not None:
        return Settings(broker_url=broker)
    return Settings()
