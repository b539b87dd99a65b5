"""results.json as types: a run, its cells and their figures (docs/results-format.md).

Every object in the file is a dataclass here, so that code reading a figure names a field
(a misspelt one fails the type check) and ``to_json`` / ``from_json`` write and read the file
exactly: a figure that could not be measured is NaN in code and null on disk.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, TypedDict

from poollab.measure.bench.ceilings import (
    Bound,
    Pathology,
    References,
    StartGaps,
    ceiling,
    diagnose,
    efficiency,
)
from poollab.measure.bench.config import Mode, RunConfig
from poollab.measure.bench.machine import Machine
from poollab.measure.bench.profiles import Profile
from poollab.measure.bench.steady import short_note
from poollab.measure.jsonrecord import OMIT_IF_NONE, JsonRecord

FORMAT = "poollab-bench/1"


Quantile = Literal["p50", "p95", "p99"]


class Percentiles(TypedDict, total=False):
    """Milliseconds at each percentile; empty when no job completed."""

    p50: float
    p95: float
    p99: float


class Latency(Percentiles, total=False):
    max: float


@dataclass(frozen=True)
class MemoryMb:
    """The consumer's whole process tree, MB (2^20 bytes)."""

    # mean of the samples after it started, before any job
    idle: float
    # over the samples in the window and the first one after it
    peak: float
    mean: float

    @classmethod
    def of(cls, figures: dict[str, float]) -> MemoryMb:
        return cls(idle=figures["idle"], peak=figures["peak"], mean=figures["mean"])


@dataclass(frozen=True)
class Contention:
    """Cores busy over a cell's window, and whose they were."""

    machine_cores: float
    # the upstream, Redis and the bench process
    lab_cores: float
    consumer_cores: float
    # the rest: other users of the machine; a cell run while this was high shared the CPU
    other_cores: float


@dataclass(frozen=True)
class RedisPerJob:
    """Server-wide counts over a cell's window, per job (live: the publisher's too)."""

    commands_per_job: float
    connections_per_job: float


@dataclass(frozen=True)
class CpuPerJob:
    """CPU per completed job over a cell's window, ms, read from /proc by the bench.

    ``main``: the consumer's main process (for prefork, taking messages, handing them to a
    child and back; for a one-process pool, everything); ``children``: every descendant
    (prefork's children, the asyncio consumer's CPU executor), reaped ones included.
    """

    main_ms: float
    children_ms: float
    # descendants seen over the window
    children: int


NO_CPU_PER_JOB = CpuPerJob(math.nan, math.nan, 0)


@dataclass(frozen=True)
class ConsumerCommand:
    """How a cell's consumer was started: enough to run it again by hand."""

    argv: list[str]
    env: dict[str, str]


@dataclass(frozen=True)
class Repeat:
    """One repeat of a cell, listed beside the median one that was kept."""

    repeat: int
    throughput_per_s: float
    duration_s: float
    raw: str


@dataclass(kw_only=True)
class BenchCell(JsonRecord):
    """One (profile, pool, concurrency, workload, mode) of the matrix, measured."""

    pool: str
    workload: str
    concurrency: int
    mode: Mode
    profile: str
    repeat: int
    params: dict[str, int]
    jobs: int
    completed: int
    failed: int
    lost: int
    early: int
    duration_s: float
    throughput_per_s: float
    latency_ms: Latency
    queue_wait_ms: Percentiles
    run_ms: Percentiles
    rss_mb: MemoryMb
    uss_mb: MemoryMb
    pss_mb: MemoryMb
    uss_mb_per_slot: float
    cpu_cores: float
    # live: completed jobs / (last send − first send), the rate offered; drain: NaN
    offered_per_s: float = math.nan
    # when the jobs started: gaps between busy periods, idle share (raw per-job timings)
    start_gaps: StartGaps = field(default_factory=lambda: StartGaps(math.nan, math.nan, math.nan))
    # derived once the whole run is measured (apply_ceilings)
    ceiling_per_s: float = math.nan
    efficiency: float = math.nan
    bound: Bound = "unknown"
    # throughput / the solo cell's of the same workload, mode and profile (plainly relative)
    x_solo: float = math.nan
    # below 25% of the ceiling: the bound that held and the cause where known
    pathology: Pathology | None = None
    # the consumer's main process and its children, CPU ms per job
    cpu_ms_per_job: CpuPerJob = NO_CPU_PER_JOB
    # from the c-th job's start (every slot busy) to the last job's start (see steady.py)
    steady_s: float = math.nan
    # "steady state X s < cell_s Y s" when the cell was too short to mean much; else null
    short: str | None = None
    publish_per_s: float
    pids: int
    procs: int
    samples: int
    # epoch seconds, unrounded: the first start (drain) or send (live), the last finish
    window: tuple[float, float]
    contention: Contention
    redis: RedisPerJob
    command: ConsumerCommand
    raw: str
    attempts: int = 1
    # --job: how this consumer ran the user's callable, in words (absent for built-in jobs)
    how_run: str | None = field(default=None, metadata=OMIT_IF_NONE)
    # with --repeat > 1: every repeat, and (max − min) / mean of their rates
    repeats: list[Repeat] | None = field(default=None, metadata=OMIT_IF_NONE)
    throughput_spread: float | None = field(default=None, metadata=OMIT_IF_NONE)

    @property
    def key(self) -> tuple[str, str, int, str, str]:
        return (self.profile, self.pool, self.concurrency, self.workload, self.mode)

    @property
    def label(self) -> str:
        return f"{self.pool} c={self.concurrency}"


@dataclass(frozen=True)
class PublisherRate:
    median_per_s: float
    max_per_s: float


PUBLISH_METHOD = (
    "kombu producer, one connection, send_task per job (poollab.producer.publish.publish); "
    "drain: while the consumer is held; live: beside the running consumer"
)


@dataclass(frozen=True, kw_only=True)
class Publisher:
    """The publisher's own rate over the cells: alone (drain) and beside a consumer (live)."""

    drain: PublisherRate | None = field(default=None, metadata=OMIT_IF_NONE)
    live: PublisherRate | None = field(default=None, metadata=OMIT_IF_NONE)
    method: str = PUBLISH_METHOD


@dataclass(kw_only=True)
class BenchRun(JsonRecord):
    """A whole run: what it ran on, how it was configured, and every cell."""

    format: str = FORMAT
    started_at: str
    finished_at: str
    duration_s: float
    command: list[str]
    machine: Machine
    config: RunConfig
    # each profile the run used, by name
    profiles: dict[str, Profile]
    references: References
    publisher: Publisher
    cells: list[BenchCell]
    # stopped half-way (Ctrl-C, SIGTERM): the cells measured until then
    interrupted: bool = False


def merge_repeats(records: Iterable[BenchCell]) -> list[BenchCell]:
    """One cell per key: the repeat with the median throughput, the others listed."""
    groups: dict[tuple[str, str, int, str, str], list[BenchCell]] = {}
    for record in records:
        groups.setdefault(record.key, []).append(record)
    cells = []
    for group in groups.values():
        ordered = sorted(group, key=lambda r: r.throughput_per_s)
        chosen = replace(ordered[(len(ordered) - 1) // 2])
        if len(group) > 1:
            rates = [r.throughput_per_s for r in group]
            chosen.repeats = [
                Repeat(r.repeat, r.throughput_per_s, r.duration_s, r.raw) for r in group
            ]
            chosen.throughput_spread = (
                round((max(rates) - min(rates)) / statistics.fmean(rates), 4)
                if statistics.fmean(rates) > 0
                else math.nan
            )
        cells.append(chosen)
    return cells


def apply_ceilings(
    cells: list[BenchCell],
    refs: References,
    busy_cores: float = math.inf,
    cell_s: float = math.nan,
) -> None:
    """Each cell's ceiling, efficiency, × solo, pathology flag and, against ``cell_s``,
    whether its steady state was too short."""
    solo = {(c.workload, c.mode, c.profile): c.throughput_per_s for c in cells if c.pool == "solo"}
    for cell in cells:
        cell.short = short_note(cell.steady_s, cell_s)
        offered = cell.offered_per_s if cell.mode == "live" else math.nan
        found = ceiling(refs, cell.pool, cell.workload, cell.concurrency, offered)
        cell.ceiling_per_s = found.per_s
        cell.bound = found.bound
        cell.efficiency = efficiency(cell.throughput_per_s, found.per_s)
        base = solo.get((cell.workload, cell.mode, cell.profile), math.nan)
        cell.x_solo = round(cell.throughput_per_s / base, 3) if base > 0 else math.nan
        rate = cell.throughput_per_s
        cell.pathology = diagnose(
            pool=cell.pool,
            eff=cell.efficiency,
            bound=cell.bound,
            gaps=cell.start_gaps,
            run_p50_ms=cell.run_ms.get("p50", math.nan),
            consumer_cpu_ms_per_job=cell.cpu_cores / rate * 1000 if rate > 0 else math.nan,
            body_cpu_ms=refs.body_cpu_s(cell.workload, cell.pool) * 1000,
            other_cores=cell.contention.other_cores,
            busy_cores=busy_cores,
        )


def publisher_rates(cells: list[BenchCell]) -> Publisher:
    """The publisher's own rate: alone (drain: the consumer is held) and beside a consumer."""

    def over(mode: Mode) -> PublisherRate | None:
        rates = [c.publish_per_s for c in cells if c.mode == mode]
        if not rates:
            return None
        return PublisherRate(round(statistics.median(rates), 1), round(max(rates), 1))

    return Publisher(drain=over("drain"), live=over("live"))


def write_results(path: Path, run: BenchRun) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run.to_json(), indent=2, allow_nan=False) + "\n")


def load_results(path: Path) -> BenchRun:
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} file")
    try:
        return BenchRun.from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
