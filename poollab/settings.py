"""Settings from the environment (prefix ``POOLLAB_``); defaults work on one machine."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
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
    # seconds before an unacknowledged message (its worker died) is delivered again
    visibility_timeout: int = Field(300, ge=1)
    # seconds results stay in Redis
    result_expires: int = Field(3600, ge=1)
    # connections each process may open to Redis (broker and result backend, each)
    redis_max_connections: int = Field(2048, ge=10)
    # Flower needs task events; they cost one publish per state change
    task_events: bool = True

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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
