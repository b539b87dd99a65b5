"""One cell of the matrix: a batch of jobs of one workload through one consumer, measured.

Two modes:

* **drain**: the consumer is frozen (SIGSTOP to its process group), the queue is filled,
  the consumer is thawed. Throughput is the consumer's own rate: jobs started after the
  release / (last finish − first start after the release).
  Latency and queue wait include the time the jobs sat in the held queue.
* **live**: the bench publishes while the consumer runs, end to end: completed / (last
  finish − first send).

Either way the publisher's rate is reported: jobs / seconds ``publish`` took.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import psutil
import redis
from celery.exceptions import TimeoutError as CeleryTimeout

from poollab.measure.bench.ceilings import start_gaps
from poollab.measure.bench.config import Mode
from poollab.measure.bench.cpusplit import CpuSplitMeter
from poollab.measure.bench.lab import BenchLab, WorkerRun
from poollab.measure.bench.results import (
    NO_CPU_PER_JOB,
    BenchCell,
    ConsumerCommand,
    Contention,
    CpuPerJob,
    Latency,
    MemoryMb,
    Percentiles,
    RedisPerJob,
)
from poollab.measure.bench.steady import steady_state_s
from poollab.measure.cpu import machine_busy_cores, machine_busy_seconds
from poollab.measure.proctree import tree_cpu_seconds
from poollab.measure.samples import Resources, read_samples, summarize_window
from poollab.producer.publish import publish, wait_for
from poollab.timings import JobTiming, Summary, summarize


@dataclass(frozen=True)
class CellSpec:
    profile: str
    pool: str
    concurrency: int
    workload: str
    mode: Mode
    params: dict[str, int]
    repeat: int = 0
    # a --job workload's task name (poollab.user.<module>.<function>); "": the workload's
    task: str = ""

    @property
    def key(self) -> str:
        return (
            f"{self.profile}-{self.pool}-c{self.concurrency}-{self.workload}-{self.mode}"
            f"-r{self.repeat}"
        )


@dataclass
class Measured:
    spec: CellSpec
    jobs: int
    summary: Summary
    resources: Resources
    publish_per_s: float
    # jobs neither completed nor failed within the cell's timeout
    lost: int
    # jobs that started before the release (counted, left out of the rate); none is
    # expected from a frozen consumer
    early: int
    window: tuple[float, float]
    contention: Contention
    redis: RedisPerJob
    timings: list[tuple[str, str, JobTiming | None]] = field(default_factory=list)
    cpu_per_job: CpuPerJob = NO_CPU_PER_JOB

    @property
    def steady_s(self) -> float:
        """Seconds at full parallelism (see poollab.measure.bench.steady)."""
        starts = [t.started for _, _, t in self.timings if t is not None]
        return steady_state_s(starts, self.spec.concurrency)

    def to_cell(self, command: ConsumerCommand, raw: str, attempts: int) -> BenchCell:
        """The cell as results.json records it (its ceiling comes once the run is done)."""
        spec, summary, res = self.spec, self.summary, self.resources
        uss_mb = MemoryMb.of(res.uss_mb)
        return BenchCell(
            pool=spec.pool,
            workload=spec.workload,
            concurrency=spec.concurrency,
            mode=spec.mode,
            profile=spec.profile,
            repeat=spec.repeat,
            params=spec.params,
            jobs=self.jobs,
            completed=summary.completed,
            failed=summary.failed,
            lost=self.lost,
            early=self.early,
            duration_s=summary.duration_s,
            throughput_per_s=summary.throughput_per_s,
            latency_ms=cast(Latency, dict(summary.latency_ms)),
            queue_wait_ms=cast(Percentiles, dict(summary.queue_wait_ms)),
            run_ms=cast(Percentiles, dict(summary.run_ms)),
            rss_mb=MemoryMb.of(res.rss_mb),
            uss_mb=uss_mb,
            pss_mb=MemoryMb.of(res.pss_mb),
            uss_mb_per_slot=round(uss_mb.peak / spec.concurrency, 3)
            if math.isfinite(uss_mb.peak)
            else math.nan,
            cpu_cores=res.cpu_cores,
            publish_per_s=self.publish_per_s,
            pids=summary.pids,
            procs=res.procs,
            samples=res.samples,
            window=self.window,
            contention=self.contention,
            redis=self.redis,
            command=command,
            raw=raw,
            attempts=attempts,
            offered_per_s=_offered(spec.mode, self.timings),
            start_gaps=start_gaps([(t.started, t.finished) for _, _, t in self.timings if t]),
            cpu_ms_per_job=self.cpu_per_job,
            steady_s=self.steady_s,
        )


def _offered(mode: Mode, timings: list[tuple[str, str, JobTiming | None]]) -> float:
    """Live: the rate the jobs were sent at, completed / (last send − first send)."""
    sent = [t.sent for _, _, t in timings if t is not None and t.sent is not None]
    if mode != "live" or len(sent) < 2 or max(sent) <= min(sent):
        return math.nan
    return round(len(sent) / (max(sent) - min(sent)), 3)


class RedisMeter:
    """Connections opened and commands run on the Redis server per job, over one window.

    Server-wide figures: anything else using the same Redis server meanwhile counts too.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._start = self._read()
        self._end: tuple[int, int] | None = None

    def _read(self) -> tuple[int, int]:
        try:
            stats: dict[str, Any] = self.client.info("stats")
        except (redis.RedisError, OSError):
            return (0, 0)
        return int(stats["total_connections_received"]), int(stats["total_commands_processed"])

    def stop(self) -> None:
        self._end = self._read()

    def per_job(self, jobs: int) -> RedisPerJob:
        end = self._end or self._read()
        jobs = max(jobs, 1)
        return RedisPerJob(
            commands_per_job=round((end[1] - self._start[1]) / jobs, 2),
            connections_per_job=round((end[0] - self._start[0]) / jobs, 3),
        )


class CpuMeter:
    """Cores busy machine-wide, and how much of that was the lab, over one window.

    The lab: the upstream and Redis with their descendants, and this process alone (the
    consumer is this process's child too, but it is measured by its own samples).
    """

    def __init__(self, lab_pids: list[int]) -> None:
        self.lab_pids = lab_pids
        self._me = psutil.Process()
        self._start = self._read()
        self._end: tuple[float, float, float] | None = None

    def _read(self) -> tuple[float, float, float]:
        mine = self._me.cpu_times()
        lab = tree_cpu_seconds(*self.lab_pids) + mine.user + mine.system
        return time.monotonic(), machine_busy_seconds(), lab

    def stop(self) -> None:
        self._end = self._read()

    def contention(self, consumer_cores: float) -> Contention:
        """Cores over the window; ``consumer_cores`` come from the consumer's samples."""
        t1, busy1, lab1 = self._end or self._read()
        t0, busy0, lab0 = self._start
        wall = max(t1 - t0, 1e-9)
        machine = (busy1 - busy0) / wall
        lab = (lab1 - lab0) / wall
        consumer = consumer_cores if math.isfinite(consumer_cores) else 0.0
        return Contention(
            machine_cores=round(machine, 3),
            lab_cores=round(lab, 3),
            consumer_cores=round(consumer, 3),
            # what other processes on the machine used meanwhile: a measurement taken while
            # this is high shared the CPU with someone else
            other_cores=round(max(machine - lab - consumer, 0.0), 3),
        )


def wait_until_quiet(busy_cores: float, max_wait_s: float) -> float:
    """Wait (at most ``max_wait_s``) for other work on the machine to drop below a limit.

    Returns the busy cores last seen. With ``max_wait_s`` 0 it does not wait at all.
    """
    if max_wait_s <= 0:
        return math.nan
    deadline = time.monotonic() + max_wait_s
    seen = machine_busy_cores()
    while seen > busy_cores and time.monotonic() < deadline:
        seen = machine_busy_cores()
    return seen


def run_cell(
    lab: BenchLab,
    worker: WorkerRun,
    spec: CellSpec,
    jobs: int,
    timeout_s: float,
    on_result: Callable[[], None] | None = None,
) -> Measured:
    assert lab.client is not None and lab.redis is not None
    app = lab.client
    lab_pids = [*lab.service_pids("upstream"), *filter(None, [lab.redis_pid()])]
    released = 0.0
    if spec.mode == "drain":
        with lab.held(worker):
            ids, publish_s = _publish(lab, spec, jobs)
            released = time.time()
        meter, server = CpuMeter(lab_pids), RedisMeter(lab.redis)
        split = CpuSplitMeter(worker.pid)
    else:
        meter, server = CpuMeter(lab_pids), RedisMeter(lab.redis)
        split = CpuSplitMeter(worker.pid)
        ids, publish_s = _publish(lab, spec, jobs)
    metas: dict[str, dict[str, Any]] = {}

    def collect(task_id: str, meta: dict[str, Any]) -> None:
        metas[task_id] = meta
        if on_result is not None:
            on_result()

    with contextlib.suppress(CeleryTimeout):
        wait_for(app, ids, timeout=timeout_s, on_result=collect)
    meter.stop()
    server.stop()
    split.stop()
    lost = len(ids) - len(metas)
    if lost:
        lab.purge(spec.pool, set(ids) - set(metas))
    timings: list[tuple[str, str, JobTiming | None]] = []
    for task_id in ids:
        meta = metas.get(task_id)
        status = str(meta["status"]) if meta else "LOST"
        ok = status == "SUCCESS" and isinstance(meta and meta["result"], dict)
        timings.append(
            (task_id, status, JobTiming.from_envelope(meta["result"]) if meta and ok else None)
        )
    done = [t for _, _, t in timings if t is not None]
    failed = sum(1 for _, status, t in timings if t is None and status != "LOST")
    summary, early, start = _summarize(spec.mode, done, jobs, failed, released)
    end = max((t.finished for t in done), default=time.time())
    lab.samples_until(worker, end)
    resources = _resources(lab, worker, start, end)
    return Measured(
        spec=spec,
        jobs=jobs,
        summary=summary,
        resources=resources,
        publish_per_s=round(jobs / publish_s, 1),
        lost=lost,
        early=early,
        window=(start, end),
        contention=meter.contention(resources.cpu_cores),
        redis=server.per_job(jobs),
        timings=timings,
        cpu_per_job=split.per_job(len(done)),
    )


def _publish(lab: BenchLab, spec: CellSpec, jobs: int) -> tuple[list[str], float]:
    """Publish the cell's jobs; return their ids and the seconds publishing took."""
    assert lab.client is not None
    began = time.time()
    # remember=False: nobody asks the API about the bench's jobs, and the publish rate
    # stays comparable with runs before ids were remembered
    ids = publish(
        lab.client, spec.pool, spec.workload, spec.params, jobs, remember=False,
        task=spec.task or None,
    )  # fmt: skip
    return ids, max(time.time() - began, 1e-9)


def _summarize(
    mode: Mode, done: list[JobTiming], jobs: int, failed: int, released: float
) -> tuple[Summary, int, float]:
    """The cell's figures, and when its measured window starts."""
    if mode == "live" or not done:
        summary = summarize(done, jobs=jobs, failed=failed)
        sent = [t.sent for t in done if t.sent is not None]
        return summary, 0, min(sent, default=time.time())
    after = [t for t in done if t.started >= released]
    start = min((t.started for t in after), default=released)
    summary = summarize(after, jobs=jobs, failed=failed, first_sent=start)
    # every completed job counts as completed; the rate counts only the released ones
    summary.completed = len(done)
    return summary, len(done) - len(after), start


def _resources(lab: BenchLab, worker: WorkerRun, start: float, end: float) -> Resources:
    assert lab.redis is not None
    # a sample each side of the window brackets it, so its CPU figure covers all of it
    slack = lab.sample_interval_s * 1.5
    around = read_samples(lab.redis, worker.pool, start - slack, end + slack * 2, worker.node)
    return summarize_window(worker.idle, around, start, end)


def write_raw(path: Path, measured: Measured) -> None:
    """Every job of the cell: id, status and timings, one JSON array per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for task_id, status, t in measured.timings:
            row: list[Any] = [task_id, status]
            if t is not None:
                row += [t.sent, t.started, t.finished, t.pid]
            out.write(json.dumps(row) + "\n")
