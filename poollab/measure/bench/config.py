"""What one benchmark run measures: the matrix and the job parameters, from the command line."""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from poollab.settings import ALL_POOLS, PoolName, Settings

Mode = Literal["drain", "live"]
MODES: tuple[Mode, ...] = ("drain", "live")
WORKLOADS: tuple[str, ...] = ("noop", "sleep", "cpu", "io", "mixed")
# workloads whose jobs wait on something (a timer, the upstream) rather than compute
WAITING_WORKLOADS = frozenset({"sleep", "io", "mixed"})
# the CPU part of a mixed job, as a share of a cpu job's n
MIXED_CPU_SHARE = 0.25


class ConfigError(ValueError):
    """A bad option value; the CLI turns it into a CliError."""


@dataclass(frozen=True)
class UserWorkload:
    """One workload of a ``--job`` run: the callable with one parameter set."""

    # the workload's name in the matrix: the function's, ``#N`` per parameter set
    name: str
    # MODULE:FUNCTION as given
    spec: str
    module: str
    # the Celery task the consumers registered it as
    task_name: str
    is_async: bool
    params: dict[str, Any]


@dataclass(frozen=True)
class BenchConfig:
    pools: tuple[PoolName, ...]
    workloads: tuple[str, ...]
    # the concurrency levels each pool runs at (solo: always 1)
    levels: dict[str, tuple[int, ...]]
    modes: tuple[Mode, ...] = MODES
    profiles: tuple[str, ...] = ("defaults", "tuned")
    # jobs per cell; None: sized from the warm-up so that a cell takes about cell_s
    jobs: int | None = None
    cell_s: float = 3.0
    min_jobs: int = 20
    max_jobs: int = 20_000
    io_latency_ms: int = 50
    cpu_n: int = 100_000
    repeat: int = 1
    # a cell during which other processes used more than busy_cores is run again, up to
    # retries times, and the least disturbed attempt is kept (shared machines, CI runners)
    busy_cores: float = 0.35
    retries: int = 1
    # before each cell, wait up to this long for other work on the machine to calm down
    quiet_wait_s: float = 0.0
    sample_interval_s: float = 0.25
    out: Path = field(default_factory=lambda: default_out_dir())
    quick: bool = False
    # --job: the user's callable, one workload per parameter set (in ``workloads`` too)
    user_jobs: tuple[UserWorkload, ...] = ()

    def user_job(self, workload: str) -> UserWorkload | None:
        return next((w for w in self.user_jobs if w.name == workload), None)

    @property
    def builtin_workloads(self) -> tuple[str, ...]:
        return tuple(w for w in self.workloads if self.user_job(w) is None)

    def job_params(self, workload: str) -> dict[str, Any]:
        """The keyword arguments of every job of this workload."""
        user = self.user_job(workload)
        if user is not None:
            return dict(user.params)
        if workload == "noop":
            return {}
        if workload in ("sleep", "io"):
            return {"ms": self.io_latency_ms}
        if workload == "cpu":
            return {"n": self.cpu_n}
        if workload == "mixed":
            return {"n": self.mixed_cpu_n, "ms": self.io_latency_ms}
        raise ConfigError(f"unknown workload {workload!r}")

    @property
    def mixed_cpu_n(self) -> int:
        return max(1, int(self.cpu_n * MIXED_CPU_SHARE))

    def cells_per_worker(self) -> int:
        return len(self.workloads) * len(self.modes)

    def worker_runs(self) -> list[tuple[str, PoolName, int, int]]:
        """(profile, pool, level, repeat) in run order: one worker start each.

        Repeats go round the whole matrix rather than one cell after another, so that a slow
        drift of the machine (someone else's job starting) falls on every pool alike.
        """
        return [
            (profile, pool, level, repeat)
            for repeat in range(self.repeat)
            for profile in self.profiles
            for pool in self.pools
            for level in self.levels[pool]
        ]


@dataclass(frozen=True)
class RunConfig(BenchConfig):
    """The configuration as results.json records it: the options, and what the run found."""

    # each workload's job parameters
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    # where Redis came from: embedded, POOLLAB_BROKER_URL or found on 127.0.0.1:6379
    broker: str = ""
    # one cpu job's work timed in the bench process
    cpu_job_ms_in_process: float = math.nan

    @classmethod
    def of(cls, config: BenchConfig, broker: str, cpu_job_ms: float) -> RunConfig:
        options = {f.name: getattr(config, f.name) for f in fields(BenchConfig)}
        params = {w: config.job_params(w) for w in config.workloads}
        return cls(**options, params=params, broker=broker, cpu_job_ms_in_process=cpu_job_ms)


def ordered_workloads(present: Collection[str], chosen: Sequence[str]) -> list[str]:
    """The workloads present, built-in ones in the catalogue's order, then --job's ones in
    the order the run chose them."""
    builtin = [w for w in WORKLOADS if w in present]
    return builtin + [w for w in chosen if w in present and w not in WORKLOADS]


def default_out_dir() -> Path:
    return Path("poollab-results") / time.strftime("%Y%m%d-%H%M%S")


def parse_list(text: str, allowed: tuple[str, ...], option: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    unknown = [p for p in items if p not in allowed]
    if unknown or not items:
        raise ConfigError(
            f"{option}: unknown {', '.join(unknown) or '(empty)'}; choose from {', '.join(allowed)}"
        )
    return items


def parse_levels(
    text: str | None, pools: tuple[PoolName, ...], settings: Settings
) -> dict[str, tuple[int, ...]]:
    """``--concurrency``: ``2,16`` (every pool but solo) and/or ``gevent=100:500`` (one pool).

    Unset: each pool at the level ``poollab up`` gives it (POOLLAB_CONCURRENCY_<POOL>).
    """
    levels: dict[str, list[int]] = {pool: [] for pool in pools}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        target, _, values = item.rpartition("=")
        if target and target not in ALL_POOLS:
            raise ConfigError(f"--concurrency: unknown pool {target!r} in {item!r}")
        try:
            numbers = [int(v) for v in values.split(":")]
        except ValueError:
            raise ConfigError(f"--concurrency: {item!r} is not N, N:M or POOL=N:M") from None
        if any(not 1 <= n <= 10_000 for n in numbers):
            raise ConfigError(f"--concurrency: {item!r}: levels go from 1 to 10000")
        for pool in pools:
            if target in ("", pool) and pool != "solo":
                levels[pool].extend(numbers)
    return {
        pool: tuple(sorted(set(found))) if found else (settings.concurrency(pool),)
        for pool, found in ((pool, levels[pool] if pool != "solo" else []) for pool in pools)
    }
