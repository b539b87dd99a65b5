"""The job catalogue: every kind defined once, in a blocking and an async variant.

Both variants do the same work and return the same value, so whichever consumer ran a
job, its result can be checked against the same expectation. Consumers wrap the value
in :func:`envelope`, which carries the job's timings inside the result the consumer
writes anyway (no extra broker round trip per job).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# the header the producer stamps with the time it published a job (epoch seconds)
SENT_HEADER = "poollab_sent"

# Upper bounds every consumer enforces whatever the producer checked: a message put on a
# queue by hand must not be able to hold a worker for an hour.
MAX_MS = 600_000
MAX_CPU_N = 500_000_000

_M = 0xFFFFFFFFFFFFFFFF
_MUL = 6364136223846793005
_INC = 1442695040888963407


class JobError(Exception):
    """A job refused its input; stored as a failure like any exception."""


class UpstreamError(Exception):
    """The upstream service answered with an error status."""


class _Params(BaseModel):
    # strict numbers, for the API and the consumers alike: true is not 1 and "5" is not 5
    # (an int is still a valid float: fail_rate 0 is fine)
    model_config = ConfigDict(extra="forbid", strict=True)


class NoopParams(_Params):
    x: Any = None


class SleepParams(_Params):
    ms: int = Field(ge=0, le=MAX_MS)


class CpuParams(_Params):
    n: int = Field(ge=1, le=MAX_CPU_N)


class IoParams(_Params):
    ms: int = Field(ge=0, le=MAX_MS)
    jitter_ms: int = Field(0, ge=0, le=MAX_MS)
    fail_rate: float = Field(0.0, ge=0.0, le=1.0)
    bytes: int = Field(0, ge=0, le=10_000_000)


class MixedParams(_Params):
    n: int = Field(ge=1, le=MAX_CPU_N)
    ms: int = Field(ge=0, le=MAX_MS)


def cpu_work(n: int) -> int:
    """n steps of a 64-bit linear congruential generator, in pure Python.

    Pure Python on purpose: the loop holds the GIL, so threads cannot overlap it. The cost
    is linear in n (about 50-80 ns a step on this machine: n=100_000 takes ~7 ms) and the
    result is checked by running the same function again.
    """
    x = 1
    for _ in range(n):
        x = (x * _MUL + _INC) & _M
    return x


def upstream_query(params: IoParams) -> str:
    query = f"ms={params.ms}"
    if params.jitter_ms:
        query += f"&jitter_ms={params.jitter_ms}"
    if params.fail_rate:
        query += f"&fail_rate={params.fail_rate}"
    if params.bytes:
        query += f"&bytes={params.bytes}"
    return query


def io_value(status: int, body: bytes, params: IoParams) -> dict[str, Any]:
    if status >= 400:
        raise UpstreamError(f"upstream answered {status} for ms={params.ms}")
    return {"status": status, "ms": params.ms, "bytes": len(body)}


class HttpGet(Protocol):
    def __call__(self, url: str, timeout_s: float) -> tuple[int, bytes]: ...


class AsyncHttpGet(Protocol):
    def __call__(self, url: str, timeout_s: float) -> Awaitable[tuple[int, bytes]]: ...


_T = TypeVar("_T")


@dataclass(frozen=True)
class BlockingContext:
    """What a blocking job needs from the consumer that runs it."""

    upstream_url: str
    http_get: HttpGet


@dataclass(frozen=True)
class AsyncContext:
    """What an async job needs: a shared HTTP client and a way to run CPU work off the loop."""

    upstream_url: str
    http_get: AsyncHttpGet
    run_cpu: Callable[[Callable[[int], int], int], Awaitable[int]]


def _timeout_s(params: IoParams) -> float:
    return (params.ms + params.jitter_ms) / 1000 + 30.0


# --- blocking variants --------------------------------------------------------------


def noop(ctx: BlockingContext, p: NoopParams) -> Any:
    return p.x


def sleep(ctx: BlockingContext, p: SleepParams) -> int:
    time.sleep(p.ms / 1000)
    return p.ms


def cpu(ctx: BlockingContext, p: CpuParams) -> int:
    return cpu_work(p.n)


def io(ctx: BlockingContext, p: IoParams) -> dict[str, Any]:
    url = f"{ctx.upstream_url}/delay?{upstream_query(p)}"
    status, body = ctx.http_get(url, _timeout_s(p))
    return io_value(status, body, p)


def mixed(ctx: BlockingContext, p: MixedParams) -> dict[str, Any]:
    digest = cpu_work(p.n)
    fetched = io(ctx, IoParams(ms=p.ms))
    return {"cpu": digest, "io": fetched}


# --- async variants -----------------------------------------------------------------


async def noop_async(ctx: AsyncContext, p: NoopParams) -> Any:
    return p.x


async def sleep_async(ctx: AsyncContext, p: SleepParams) -> int:
    await asyncio.sleep(p.ms / 1000)
    return p.ms


async def cpu_async(ctx: AsyncContext, p: CpuParams) -> int:
    return await ctx.run_cpu(cpu_work, p.n)


async def io_async(ctx: AsyncContext, p: IoParams) -> dict[str, Any]:
    url = f"{ctx.upstream_url}/delay?{upstream_query(p)}"
    status, body = await ctx.http_get(url, _timeout_s(p))
    return io_value(status, body, p)


async def mixed_async(ctx: AsyncContext, p: MixedParams) -> dict[str, Any]:
    digest = await ctx.run_cpu(cpu_work, p.n)
    fetched = await io_async(ctx, IoParams(ms=p.ms))
    return {"cpu": digest, "io": fetched}


@dataclass(frozen=True)
class JobKind:
    name: str
    params: type[_Params]
    run: Callable[[BlockingContext, Any], Any]
    run_async: Callable[[AsyncContext, Any], Awaitable[Any]]

    @property
    def task_name(self) -> str:
        return f"poollab.{self.name}"

    def validate(self, kwargs: dict[str, Any]) -> _Params:
        """Parse a job's keyword arguments; a bad value raises :class:`JobError`."""
        try:
            return self.params.model_validate(kwargs)
        except ValidationError as exc:
            raise JobError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in err['loc']) or 'params'}: {err['msg']}"
        for err in exc.errors()
    )


CATALOGUE: dict[str, JobKind] = {
    kind.name: kind
    for kind in (
        JobKind("noop", NoopParams, noop, noop_async),
        JobKind("sleep", SleepParams, sleep, sleep_async),
        JobKind("cpu", CpuParams, cpu, cpu_async),
        JobKind("io", IoParams, io, io_async),
        JobKind("mixed", MixedParams, mixed, mixed_async),
    )
}
KINDS: tuple[str, ...] = tuple(CATALOGUE)
TASK_NAMES: dict[str, JobKind] = {kind.task_name: kind for kind in CATALOGUE.values()}

HOSTNAME = socket.gethostname()


def envelope(value: Any, pool: str, sent: float | None, started: float) -> dict[str, Any]:
    """The result every consumer stores: the job's value plus who ran it and when."""
    return {
        "value": value,
        "pool": pool,
        "hostname": HOSTNAME,
        "pid": os.getpid(),
        "timings": {"sent": sent, "started": started, "finished": time.time()},
    }


def expected_value(kind: str, params: dict[str, Any]) -> Any:
    """What a job of this kind returns for these params (for checks and tests)."""
    if kind == "noop":
        return params.get("x")
    if kind == "sleep":
        return params["ms"]
    if kind == "cpu":
        return cpu_work(params["n"])
    if kind == "io":
        return {"status": 200, "ms": params["ms"], "bytes": params.get("bytes", 0)}
    if kind == "mixed":
        io_expected = {"status": 200, "ms": params["ms"], "bytes": 0}
        return {"cpu": cpu_work(params["n"]), "io": io_expected}
    raise KeyError(kind)
