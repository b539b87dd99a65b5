"""Physical ceilings: what a cell could do at best, from bounds that do not depend on the
system measured, so that every result is also a ratio that cannot exceed 1.

Each workload's **job body** (the catalogue's blocking variant, ``poollab.jobs``) is timed in
a bare loop in the bench process, outside any queue: its own CPU time per job (for io and
mixed, the HTTP client's and the parse's CPU against the bench's upstream). A cell's ceiling
is the least of

* **slots**: ``concurrency / (latency + body CPU)``: no slot runs two jobs at once;
* **cores**: ``cores this configuration can use / body CPU``: 1 for solo, threads (the
  GIL), gevent and the asyncio consumer's event loop; ``min(c, cores)`` for prefork;
  ``min(cpu_workers, cores)`` for the asyncio consumer's CPU work (its process executor);
* **offered** (live only): the rate the publisher sent the jobs at.

None of them includes a queue, a broker or a result store, so anything a consumer does
beyond the body shows as efficiency below 1. The same definitions for the reader of
results.json: docs/results-format.md.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from poollab import jobs
from poollab.consumer.config import ConsumerConfig
from poollab.measure.bench.config import WAITING_WORKLOADS
from poollab.userjobs import GEVENT_ASYNC_THREADS

Bound = Literal["slots", "cores", "offered", "unknown"]

# seconds of bare loop per workload, and of one batch within it
CALIBRATION_S = 0.3
BATCH_S = 0.02
# async waiting jobs (sleep, io, mixed) timed this many at once
ASYNC_WAITING_BATCH = 50
# workloads whose CPU part the asyncio consumer hands to its CPU executor
EXECUTOR_WORKLOADS = frozenset({"cpu", "mixed"})
# pools whose jobs (or whose Python) run on one thread: one core at most
ONE_CORE_POOLS = frozenset({"solo", "threads", "gevent"})
# where the asyncio consumer as the bench starts it (no --cpu-executor) runs plain callables
ASYNCIO_EXECUTOR = ConsumerConfig(nodename="").cpu_executor


@dataclass(frozen=True)
class BodyCalibration:
    """One workload's job body timed in a bare loop in one process, outside any queue."""

    params: dict[str, int]
    jobs: int
    # CPU seconds per job (the thread's own), ms: the least over the loop's batches
    cpu_ms: float
    # the mean over the whole loop, ms
    cpu_ms_mean: float
    # wall time per job, ms (mean)
    wall_ms: float


@dataclass(frozen=True)
class UserCalibration:
    """A ``--job`` workload's callable timed in a bare loop in a process of its own
    (``poollab.measure.bench.userprobe``), outside any queue.

    Plain callables are called directly, async ones through ``asyncio.run`` per call as the
    Celery pools run them, and also awaited one after another on one event loop as the
    asyncio consumer runs them (the ``loop_`` figures). Per-call figures are the least over
    the loop's batches (the ``_mean`` ones over the whole loop), in ms.
    """

    params: dict[str, Any]
    is_async: bool
    jobs: int
    # CPU of the whole process (every thread the call started) and of its reaped children
    cpu_ms: float
    cpu_ms_mean: float
    # the calling thread's own CPU: what a one-thread consumer must run itself
    thread_cpu_ms: float
    wall_ms: float
    wall_ms_mean: float
    # cpu_ms ÷ wall_ms: the share of a call that keeps a CPU busy (above 1: several)
    cpu_share: float
    # N calls on N threads at once against N in a row: how much threads overlap
    threads: int
    # serial wall ÷ parallel wall (NaN: a call too long to time that way)
    thread_speedup: float
    # (speedup − 1) ÷ (N − 1), 0 (threads serialise: the GIL) to 1 (they fully overlap)
    thread_overlap: float
    # async callables on one event loop: the loop thread's CPU and the wall per call
    loop_cpu_ms: float = math.nan
    loop_wall_ms: float = math.nan


@dataclass(frozen=True)
class References:
    """What every ceiling of a run is derived from: the machine and the job bodies."""

    cores: int
    # the asyncio consumer's process CPU executor size (its --cpu-workers default)
    asyncio_cpu_workers: int
    io_latency_ms: int
    # per workload of the run
    bodies: dict[str, BodyCalibration]
    # the async variants, for the asyncio consumer (empty when the run has none)
    async_bodies: dict[str, BodyCalibration]
    method: str
    # the --job workloads' callables, by workload (empty without --job)
    user: dict[str, UserCalibration] = field(default_factory=dict)

    def body_cpu_s(self, workload: str, pool: str = "") -> float:
        """The body's CPU seconds; the asyncio consumer's own variant for that pool."""
        own = self.user.get(workload)
        if own is not None:
            on_loop = pool == "asyncio" and own.is_async
            return (own.loop_cpu_ms if on_loop else own.cpu_ms) / 1000
        body = self.bodies.get(workload)
        if pool == "asyncio":
            body = self.async_bodies.get(workload, body)
        return body.cpu_ms / 1000 if body is not None else math.nan

    def latency_s(self, workload: str) -> float:
        return self.io_latency_ms / 1000 if workload in WAITING_WORKLOADS else 0.0

    def merged(self, other: References) -> References:
        """These timings and ``other``'s of the same bodies, each body at its least.

        A body never runs cheaper than it is: other programs (and a hypervisor's steal, which
        a guest's thread CPU clock counts) only add to a timing, so the least of several
        taken through a run is the best estimate of the body's own cost.
        """
        return replace(
            self,
            bodies=_least_bodies(self.bodies, other.bodies),
            async_bodies=_least_bodies(self.async_bodies, other.async_bodies),
            user={
                name: _least_user(self.user[name], theirs) if name in self.user else theirs
                for name, theirs in other.user.items()
            }
            | {name: mine for name, mine in self.user.items() if name not in other.user},
        )


def _least(a: float, b: float) -> float:
    known = [x for x in (a, b) if not math.isnan(x)]
    return min(known) if known else math.nan


def _most(a: float, b: float) -> float:
    known = [x for x in (a, b) if not math.isnan(x)]
    return max(known) if known else math.nan


def _least_user(ours: UserCalibration, theirs: UserCalibration) -> UserCalibration:
    """Each cost at its least over the timings, the threads' overlap at its most: every
    bound stays an upper bound (a busy moment only ever adds to a cost and hides overlap)."""
    return replace(
        ours,
        jobs=ours.jobs + theirs.jobs,
        cpu_ms=_least(ours.cpu_ms, theirs.cpu_ms),
        thread_cpu_ms=_least(ours.thread_cpu_ms, theirs.thread_cpu_ms),
        wall_ms=_least(ours.wall_ms, theirs.wall_ms),
        thread_speedup=_most(ours.thread_speedup, theirs.thread_speedup),
        thread_overlap=_most(ours.thread_overlap, theirs.thread_overlap),
        loop_cpu_ms=_least(ours.loop_cpu_ms, theirs.loop_cpu_ms),
        loop_wall_ms=_least(ours.loop_wall_ms, theirs.loop_wall_ms),
    )


def _least_bodies(
    ours: dict[str, BodyCalibration], theirs: dict[str, BodyCalibration]
) -> dict[str, BodyCalibration]:
    merged = dict(ours)
    for workload, body in theirs.items():
        known = merged.get(workload)
        if known is None:
            merged[workload] = body
            continue
        least = known if known.cpu_ms <= body.cpu_ms else body
        merged[workload] = replace(least, jobs=known.jobs + body.jobs)
    return merged


METHOD = (
    "each workload's blocking job body (poollab.jobs; the async variant with the asyncio "
    "consumer's aiohttp client for that consumer) called in a bare loop in the bench "
    f"process for ~{CALIBRATION_S} s, outside any queue, before each consumer starts; CPU time "
    f"by time.thread_time (the calling thread's own), the least per job over "
    f"~{BATCH_S * 1000:.0f} ms batches and over every timing of the run"
)


def calibrate(
    workloads: tuple[str, ...],
    params_of: Callable[[str], dict[str, int]],
    upstream_url: str,
    seconds: float = CALIBRATION_S,
) -> dict[str, BodyCalibration]:
    """Time each workload's body in a bare loop (io and mixed against ``upstream_url``)."""
    from poollab.worker.http import http_get

    ctx = jobs.BlockingContext(upstream_url=upstream_url.rstrip("/"), http_get=http_get)
    found = {}
    for workload in workloads:
        kind = jobs.CATALOGUE[workload]
        params = params_of(workload)
        parsed = kind.validate(dict(params))

        def batch(n: int, kind: jobs.JobKind = kind, parsed: Any = parsed) -> None:
            for _ in range(n):
                kind.run(ctx, parsed)

        batch(1)  # imports, the upstream connection
        found[workload] = _bare_loop(batch, params, seconds)
    return found


def calibrate_async(
    workloads: tuple[str, ...],
    params_of: Callable[[str], dict[str, int]],
    upstream_url: str,
    seconds: float = CALIBRATION_S,
) -> dict[str, BodyCalibration]:
    """The same for the async variants the asyncio consumer runs (its aiohttp client).

    CPU work runs inline here, on the timed thread: the body's whole CPU time. Waiting
    jobs run ASYNC_WAITING_BATCH at once, as a consumer with that many slots would.
    """
    from poollab.consumer.runtime import CpuRunner, HttpClient, job_context

    loop = asyncio.new_event_loop()
    http = HttpClient(ASYNC_WAITING_BATCH)
    ctx = job_context(upstream_url, http, CpuRunner("inline"))
    found = {}
    try:
        for workload in workloads:
            kind = jobs.CATALOGUE[workload]
            params = params_of(workload)
            parsed = kind.validate(dict(params))

            waits = workload in WAITING_WORKLOADS

            async def run(
                n: int, kind: jobs.JobKind = kind, parsed: Any = parsed, waits: bool = waits
            ) -> None:
                if waits:
                    await asyncio.gather(*(kind.run_async(ctx, parsed) for _ in range(n)))
                    return
                for _ in range(n):
                    await kind.run_async(ctx, parsed)

            def batch(n: int, run: Callable[[int], Any] = run) -> None:
                loop.run_until_complete(run(n))

            # waiting jobs many at once, as the consumer runs them: one wake-up of the
            # loop serves several requests, which lowers the CPU per job
            first = ASYNC_WAITING_BATCH if waits else 1
            batch(first)
            found[workload] = _bare_loop(batch, params, seconds, first)
    finally:
        loop.run_until_complete(http.close())
        loop.close()
    return found


@dataclass(frozen=True)
class Batch:
    """One batch of a bare loop: calls, CPU by the loop's clock, the thread's own CPU, wall."""

    calls: int
    cpu: float
    own: float
    wall: float


def time_batches(
    batch: Callable[[int], None],
    seconds: float,
    first: int = 1,
    clock: Callable[[], float] = time.thread_time,
    max_calls: int | None = None,
) -> list[Batch]:
    """Call ``batch(n)`` for ~``seconds``, n doubling while a batch is under BATCH_S / 2.

    Bounded in time and, with ``max_calls``, in calls (a job with side effects); at least
    one batch runs however long it takes.
    """
    per_batch = first
    batches: list[Batch] = []
    began = time.perf_counter()
    while True:
        wall0, cpu0, own0 = time.perf_counter(), clock(), time.thread_time()
        batch(per_batch)
        batches.append(
            Batch(
                per_batch,
                clock() - cpu0,
                time.thread_time() - own0,
                time.perf_counter() - wall0,
            )
        )
        done = sum(b.calls for b in batches)
        if time.perf_counter() - began >= seconds or (max_calls and done >= max_calls):
            return batches
        if batches[-1].wall < BATCH_S / 2:
            per_batch *= 2
        if max_calls:
            per_batch = max(1, min(per_batch, max_calls - done))


def least_per_call(batches: list[Batch], figure: Callable[[Batch], float]) -> float:
    """The least per call over the batches of at least a quarter of the largest (tiny
    batches are noise), in ms."""
    largest = max(b.calls for b in batches)
    return min(figure(b) / b.calls for b in batches if b.calls * 4 >= largest) * 1000


def mean_per_call(batches: list[Batch], figure: Callable[[Batch], float]) -> float:
    return sum(figure(b) for b in batches) / sum(b.calls for b in batches) * 1000


def _bare_loop(
    batch: Callable[[int], None], params: dict[str, int], seconds: float, first: int = 1
) -> BodyCalibration:
    batches = time_batches(batch, seconds, first)
    return BodyCalibration(
        params=dict(params),
        jobs=sum(b.calls for b in batches),
        cpu_ms=round(least_per_call(batches, lambda b: b.cpu), 6),
        cpu_ms_mean=round(mean_per_call(batches, lambda b: b.cpu), 6),
        wall_ms=round(mean_per_call(batches, lambda b: b.wall), 6),
    )


def asyncio_cpu_workers() -> int:
    """The asyncio consumer's CPU executor size as the bench starts it (no --cpu-workers)."""
    return os.cpu_count() or 1


def usable_cores(refs: References, pool: str, workload: str, concurrency: int) -> int:
    """Cores a configuration can run job bodies on at once."""
    if pool == "prefork":
        return max(1, min(concurrency, refs.cores))
    if pool == "asyncio" and workload in EXECUTOR_WORKLOADS:
        return max(1, min(refs.asyncio_cpu_workers, refs.cores))
    return 1


@dataclass(frozen=True)
class Ceiling:
    per_s: float
    bound: Bound


def ceiling(
    refs: References, pool: str, workload: str, concurrency: int, offered_per_s: float = math.nan
) -> Ceiling:
    own = refs.user.get(workload)
    cpu_s = refs.body_cpu_s(workload, pool)
    if not math.isfinite(cpu_s) or cpu_s < 0:
        return Ceiling(math.nan, "unknown")
    cpu_s = max(cpu_s, 1e-9)
    # on a tie (solo on cpu jobs: one slot, one core) the cores bound is named
    bounds: list[tuple[float, Bound]] = (
        user_bounds(refs, own, pool, concurrency)
        if own is not None
        else [
            (usable_cores(refs, pool, workload, concurrency) / cpu_s, "cores"),
            (concurrency / (refs.latency_s(workload) + cpu_s), "slots"),
        ]
    )
    if any(not math.isfinite(per_s) for per_s, _ in bounds):
        return Ceiling(math.nan, "unknown")
    if math.isfinite(offered_per_s) and offered_per_s > 0:
        bounds.append((offered_per_s, "offered"))
    per_s, bound = min(bounds, key=lambda b: b[0])
    return Ceiling(round(per_s, 3), bound)


def threads_cores(cores: float, overlap: float) -> float:
    """Cores N threads can keep busy with a call's own CPU: 1 where they serialise (a call
    holding the GIL), up to ``cores`` as far as they overlapped in the bare loop (unknown
    overlap: ``cores``, which keeps the bound an upper bound)."""
    share = 1.0 if math.isnan(overlap) else min(max(overlap, 0.0), 1.0)
    return 1 + (max(cores, 1) - 1) * share


def user_bounds(
    refs: References, cal: UserCalibration, pool: str, concurrency: int
) -> list[tuple[float, Bound]]:
    """A --job workload's slots and cores bounds, from its own bare-loop figures.

    slots = slots / wall per call; cores = the least of (cores the calling thread's own CPU
    can spread over) / its CPU per call and (the machine's cores) / all the CPU a call uses
    (its threads', its children's). The first is 1 for one-thread configurations (solo,
    gevent, the asyncio consumer's loop), the threads' measured overlap for threads, a
    thread executor and gevent's native threads for async callables, ``min(c, cores)`` for
    prefork and a process executor.
    """
    cores = refs.cores
    spread = min(concurrency, cores)
    cpu_s, own_s, wall_s = cal.cpu_ms / 1000, cal.thread_cpu_ms / 1000, cal.wall_ms / 1000
    slots = float(concurrency)
    own_cores: float = 1.0
    if pool == "prefork":
        own_cores = spread
    elif pool == "threads":
        own_cores = threads_cores(spread, cal.thread_overlap)
    elif pool == "gevent" and cal.is_async:
        # each asyncio.run goes to a native thread of the hub's threadpool
        slots = float(min(concurrency, GEVENT_ASYNC_THREADS))
        own_cores = threads_cores(min(spread, GEVENT_ASYNC_THREADS), cal.thread_overlap)
    elif pool == "asyncio" and cal.is_async:
        own_s = cpu_s = cal.loop_cpu_ms / 1000
        wall_s = cal.loop_wall_ms / 1000
    elif pool == "asyncio":
        workers = refs.asyncio_cpu_workers
        kind = ASYNCIO_EXECUTOR
        slots = 1.0 if kind == "inline" else float(min(concurrency, workers))
        if kind == "process":
            own_cores = min(workers, cores)
        elif kind == "thread":
            own_cores = threads_cores(min(workers, cores), cal.thread_overlap)
    return [
        (min(own_cores / max(own_s, 1e-9), cores / max(cpu_s, 1e-9)), "cores"),
        (slots / max(wall_s, 1e-9), "slots"),
    ]


def efficiency(throughput: float, ceiling_per_s: float) -> float:
    if not math.isfinite(ceiling_per_s) or ceiling_per_s <= 0:
        return math.nan
    # 4 significant digits: a noop cell is a tiny share of its body's ceiling
    return float(f"{throughput / ceiling_per_s:.4g}")


# --- pathology: a cell far below its ceiling ------------------------------------------

# a cell below this share of its ceiling is flagged
PATHOLOGY_EFFICIENCY = 0.25
Cause = Literal["stall", "contention", "overhead"]
# a stall: the consumer idle at least this share of the window, and the median gap between
# the starts of its busy periods this many times a job's run time and at least
# STALL_MIN_GAP_S, or at least STALL_NEAR_SHARE of those gaps near 2 s (STALL_NEAR_S: the
# gevent stall's; its jobs may come in bursts, whose gaps inside are short)
STALL_IDLE = 0.5
STALL_GAP_TIMES_RUN = 5.0
STALL_MIN_GAP_S = 0.5
STALL_NEAR_S = (1.5, 2.5)
STALL_NEAR_SHARE = 0.3
# per-job overhead: the consumer's CPU per job is this many times the body's
OVERHEAD_TIMES_BODY = 4.0


@dataclass(frozen=True)
class StartGaps:
    """When a cell's jobs started, from its raw per-job timings.

    A busy period: jobs running back to back or overlapping; it starts with a job that
    started while no other one ran. Gaps are between consecutive such starts.
    """

    # median gap between consecutive busy periods' starts, ms (null: one busy period)
    p50_ms: float
    # share of those gaps between 1.5 and 2.5 s
    near_2s: float
    # share of the window (first start to last finish) with no job running
    idle: float


def start_gaps(jobs: list[tuple[float, float]]) -> StartGaps:
    """From each job's (started, finished)."""
    ordered = sorted(jobs)
    if not ordered:
        return StartGaps(math.nan, math.nan, math.nan)
    starts: list[float] = []
    busy, end = 0.0, -math.inf
    for started, finished in ordered:
        if started > end:
            starts.append(started)
            busy += finished - started
            end = finished
        elif finished > end:
            busy += finished - end
            end = finished
    window = end - ordered[0][0]
    idle = round(max(0.0, 1 - busy / window), 4) if window > 0 else math.nan
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    if not gaps:
        return StartGaps(math.nan, math.nan, idle)
    low, high = STALL_NEAR_S
    near = sum(1 for g in gaps if low <= g <= high) / len(gaps)
    return StartGaps(round(statistics.median(gaps) * 1000, 3), round(near, 4), idle)


def is_stall(gaps: StartGaps, run_p50_ms: float) -> bool:
    """The consumer idle most of the window, and its busy periods seconds apart (their
    median gap long against a job's run time) or, in bursts, often ~2 s apart."""
    if not (math.isfinite(gaps.p50_ms) and math.isfinite(run_p50_ms)):
        return False
    if not gaps.idle >= STALL_IDLE:
        return False
    long_gaps = gaps.p50_ms >= STALL_MIN_GAP_S * 1000 and gaps.p50_ms >= (
        STALL_GAP_TIMES_RUN * max(run_p50_ms, 0.0)
    )
    return long_gaps or gaps.near_2s >= STALL_NEAR_SHARE


@dataclass(frozen=True)
class Pathology:
    """Why a cell below 25% of its ceiling was flagged, as far as the lab knows."""

    bound: Bound
    # stall (jobs started ~2 s apart), overhead (the consumer's own CPU per job far above
    # the body's), contention (neither; other processes used the machine), or null
    cause: Cause | None
    detail: str


def diagnose(
    *,
    pool: str,
    eff: float,
    bound: Bound,
    gaps: StartGaps,
    run_p50_ms: float,
    consumer_cpu_ms_per_job: float,
    body_cpu_ms: float,
    other_cores: float = 0.0,
    busy_cores: float = math.inf,
) -> Pathology | None:
    """A Pathology when the cell is below PATHOLOGY_EFFICIENCY of its ceiling, else None."""
    if not (math.isfinite(eff) and eff < PATHOLOGY_EFFICIENCY):
        return None
    if is_stall(gaps, run_p50_ms):
        detail = (
            f"no job ran {gaps.idle * 100:.0f}% of the time: busy periods started a median "
            f"{gaps.p50_ms / 1000:.2f} s apart, {gaps.near_2s * 100:.0f}% of the gaps near 2 s, "
            f"while each job ran {run_p50_ms:.0f} ms"
        )
        if pool == "gevent" and gaps.near_2s >= STALL_NEAR_SHARE:
            detail += " (the gevent pool's ~2 s stall: it took the next messages only ~2 s later)"
        return Pathology(bound, "stall", detail)
    if (
        math.isfinite(consumer_cpu_ms_per_job)
        and math.isfinite(body_cpu_ms)
        and consumer_cpu_ms_per_job >= OVERHEAD_TIMES_BODY * body_cpu_ms
    ):
        return Pathology(
            bound,
            "overhead",
            f"the consumer spent {consumer_cpu_ms_per_job:.2f} ms of CPU per job on a body "
            f"of {body_cpu_ms:.3f} ms: its own per-job path dominates",
        )
    if other_cores > busy_cores:
        return Pathology(
            bound,
            "contention",
            f"other processes used {other_cores:.2f} cores of the machine meanwhile",
        )
    return Pathology(bound, None, "cause not known")
