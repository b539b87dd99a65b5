"""What async jobs run with: one shared HTTP session, and CPU work kept off the event loop.

CPU work goes to a process pool by default: pure-Python loops hold the GIL, so a thread
pool would stall the loop's own bookkeeping as much as running them inline. ``thread`` and
``inline`` exist to show exactly that.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import aiohttp

from poollab import jobs
from poollab.consumer.config import CpuExecutorKind

log = logging.getLogger(__name__)
_T = TypeVar("_T")


def _ready() -> int:
    return os.getpid()


class CpuRunner:
    """Runs ``fn(n)`` for a job: in a process pool, a thread pool, or on the loop itself."""

    def __init__(self, kind: CpuExecutorKind, workers: int | None = None) -> None:
        self.kind = kind
        self.workers = workers or os.cpu_count() or 1
        self._executor: Executor | None = self._new_executor()

    def _new_executor(self) -> Executor | None:
        if self.kind == "process":
            # forkserver: children never inherit the loop, its sockets or its threads
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["poollab.jobs"])
            return ProcessPoolExecutor(self.workers, mp_context=context)
        if self.kind == "thread":
            return ThreadPoolExecutor(self.workers, thread_name_prefix="cpu")
        return None

    async def warm(self) -> None:
        """Start the pool's workers now, so the first CPU job does not pay for it."""
        if self._executor is None:
            return
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self._executor, _ready) for _ in range(self.workers))
        )

    async def __call__(self, fn: Callable[[int], int], n: int) -> int:
        return await self.run(fn, n)

    async def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)`` where CPU work runs (a user's plain callable, any arguments).

        A child process that died (killed for its memory, ``os._exit``) breaks the whole
        process pool: its job fails with BrokenProcessPool and the pool is replaced, so the
        next jobs run.
        """
        executor = self._executor
        if executor is None:
            return fn(*args)
        try:
            return await asyncio.get_running_loop().run_in_executor(
                executor, functools.partial(fn, *args)
            )
        except BrokenProcessPool:
            if self._executor is executor:
                log.error("a process of the cpu executor died: starting a new pool")
                executor.shutdown(wait=False, cancel_futures=True)
                self._executor = self._new_executor()
            raise

    def shutdown(self) -> None:
        """Stop without waiting: work still running is abandoned (its message was restored)."""
        if self._executor is None:
            return
        processes = list(getattr(self._executor, "_processes", {}).values())
        self._executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()


class HttpClient:
    """One aiohttp session for every I/O job, with room for a connection per job slot."""

    def __init__(self, concurrency: int) -> None:
        self.limit = max(concurrency, 100)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.limit, limit_per_host=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def get(self, url: str, timeout_s: float) -> tuple[int, bytes]:
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with self.session.get(url, timeout=timeout) as response:
            return response.status, await response.read()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def job_context(upstream_url: str, http: HttpClient, cpu: CpuRunner) -> jobs.AsyncContext:
    return jobs.AsyncContext(upstream_url=upstream_url.rstrip("/"), http_get=http.get, run_cpu=cpu)
