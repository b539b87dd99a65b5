"""A whole benchmark run: start the lab, run every cell, derive the ceilings, write results.json."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from typing import Any, Protocol

from celery.exceptions import TimeoutError as CeleryTimeout
from rich.console import Console

from poollab.measure.bench.ceilings import (
    METHOD,
    References,
    asyncio_cpu_workers,
    calibrate,
    calibrate_async,
    ceiling,
)
from poollab.measure.bench.cell import CellSpec, Measured, run_cell, wait_until_quiet, write_raw
from poollab.measure.bench.config import BenchConfig, RunConfig
from poollab.measure.bench.lab import BenchError, BenchLab, WorkerRun
from poollab.measure.bench.machine import describe_machine, usable_cores
from poollab.measure.bench.profiles import PROFILES, get_profile
from poollab.measure.bench.progress import BenchProgress
from poollab.measure.bench.results import (
    BenchCell,
    BenchRun,
    ConsumerCommand,
    apply_ceilings,
    merge_repeats,
    publisher_rates,
    write_results,
)
from poollab.measure.bench.sizing import (
    cell_jobs,
    cell_timeout_s,
    guess_rate,
    time_cpu_job,
    warmup_jobs,
)
from poollab.measure.bench.steady import jobs_for_steady
from poollab.measure.bench.userjob import ProbeError, calibrate_user, how_run, worker_environ
from poollab.producer.publish import publish, wait_for
from poollab.stopping import signals_ignored
from poollab.timings import JobTiming, summarize

# times a cell that ran much shorter than its target is run again with more jobs
MAX_GROWTHS = 2
# a --job warm-up is sized from the callable's ceiling, at most this rate
USER_GUESS = 1000.0


class BenchHooks(Protocol):
    """Called as the run goes (the tests read the consumer's memory independently here)."""

    def worker_ready(self, worker: WorkerRun) -> None: ...

    def cell_done(self, cell: BenchCell, worker: WorkerRun) -> None: ...


class NoHooks:
    def worker_ready(self, worker: WorkerRun) -> None:
        return None

    def cell_done(self, cell: BenchCell, worker: WorkerRun) -> None:
        return None


class Runner:
    def __init__(
        self,
        config: BenchConfig,
        environ: dict[str, str],
        console: Console,
        hooks: BenchHooks | None = None,
    ) -> None:
        self.config = config
        self.console = console
        self.hooks = hooks or NoHooks()
        self.cores = usable_cores()
        # with --job, every consumer imports the job's module (POOLLAB_JOBS, the cwd on
        # PYTHONPATH) and the bare loop runs in that environment too
        lab_environ = worker_environ(environ, config.user_jobs)
        self.lab = BenchLab(lab_environ, config.out / "lab", config.sample_interval_s)
        self.records: list[BenchCell] = []
        self.cpu_job_s = 0.0

    def run(self, command: list[str] | None = None) -> BenchRun:
        config = self.config
        config.out.mkdir(parents=True, exist_ok=True)
        began = time.time()
        self.cpu_job_s = time_cpu_job(config.cpu_n)
        runs = config.worker_runs()
        progress = BenchProgress(
            self.console, len(runs) * config.cells_per_worker(), len(runs), config.cell_s
        )
        interrupted = False
        with progress:
            self.lab.say = progress.say
            self.lab.start()
            try:
                assert self.lab.settings is not None
                self.lab.check_queues_empty(config.pools)
                self.lab.check_no_other_consumers(config.pools)
                machine = describe_machine(self.lab.settings.broker_url)
                # before any consumer runs: the job bodies alone, on a quiet lab (timed again
                # before each consumer; every ceiling takes the least of them at the end)
                self.refs = self._references()
                try:
                    for profile_name, pool, level, repeat in runs:
                        self._run_worker(progress, profile_name, pool, level, repeat)
                except KeyboardInterrupt:
                    # a long run stopped half-way keeps (and reports) the cells it measured
                    if not self.records:
                        raise
                    interrupted = True
                    self.console.print("[yellow]stopped: writing the cells measured so far[/]")
            finally:
                with signals_ignored():
                    self.lab.stop()
        cells = merge_repeats(self.records)
        refs = self.refs
        apply_ceilings(cells, refs, config.busy_cores, config.cell_s)
        run = BenchRun(
            started_at=_iso(began),
            finished_at=_iso(time.time()),
            duration_s=round(time.time() - began, 1),
            command=command or [],
            machine=machine,
            config=RunConfig.of(config, self.lab.broker_label, round(self.cpu_job_s * 1000, 3)),
            profiles={name: PROFILES[name] for name in config.profiles},
            references=refs,
            publisher=publisher_rates(cells),
            cells=cells,
            interrupted=interrupted,
        )
        write_results(config.out / "results.json", run)
        return run

    # --- one consumer process -------------------------------------------------------------

    def _run_worker(
        self, progress: BenchProgress, profile_name: str, pool: str, level: int, repeat: int
    ) -> None:
        config = self.config
        if self.records:
            # the lab is quiet between consumers: time the bodies again (see References.merged)
            self.refs = self.refs.merged(self._references())
        started = time.monotonic()
        worker = self.lab.start_worker(pool, level, get_profile(profile_name))
        progress.worker_started(time.monotonic() - started, f"{pool} -c {level} ({profile_name})")
        self.hooks.worker_ready(worker)
        try:
            for workload in config.workloads:
                for mode in config.modes:
                    params = config.job_params(workload)
                    user = config.user_job(workload)
                    spec = CellSpec(
                        profile_name, pool, level, workload, mode, params, repeat,
                        task=user.task_name if user else "",
                    )  # fmt: skip
                    began = time.monotonic()
                    cell = self._measure(progress, worker, spec)
                    self.records.append(cell)
                    progress.cell_done(time.monotonic() - began, cell)
                    self.hooks.cell_done(cell, worker)
        finally:
            self.lab.stop_worker(worker)

    def _measure(self, progress: BenchProgress, worker: WorkerRun, spec: CellSpec) -> BenchCell:
        user = self.config.user_job(spec.workload)
        guess = (
            # the callable's own ceiling: the bound it was measured against
            min(ceiling(self.refs, spec.pool, spec.workload, spec.concurrency).per_s, USER_GUESS)
            if user is not None
            else guess_rate(
                self.config, spec.pool, spec.workload, spec.concurrency, self.cores, self.cpu_job_s
            )
        )
        rate = self._warm_up(spec, warmup_jobs(spec.concurrency, guess), guess)
        jobs = cell_jobs(self.config, spec.concurrency, rate)
        progress.cell_started(f"{spec.pool} c={spec.concurrency} {spec.workload} {spec.mode}", jobs)
        measured = run_cell(
            self.lab, worker, spec, jobs, cell_timeout_s(jobs, rate), on_result=progress.job_done
        )
        # a consumer much faster than the warm-up showed (drain beats publishing) finished
        # too soon for its samples to mean anything: size the cell from its own rate
        for _ in range(MAX_GROWTHS):
            longer = _longer_jobs(self.config, measured)
            if longer is None:
                break
            jobs, rate = longer, measured.summary.throughput_per_s
            progress.cell_started(f"{spec.pool} c={spec.concurrency} {spec.workload} longer", jobs)
            measured = run_cell(
                self.lab, worker, spec, jobs, cell_timeout_s(jobs, rate),
                on_result=progress.job_done,
            )  # fmt: skip
        attempts = 1
        while _disturbed(measured, self.config.busy_cores) and attempts <= self.config.retries:
            progress.say(
                f"other processes used {measured.contention.other_cores:.2f} cores during "
                f"{spec.key}; running it again"
            )
            progress.cell_started(f"{spec.pool} c={spec.concurrency} {spec.workload} again", jobs)
            wait_until_quiet(self.config.busy_cores, self.config.quiet_wait_s)
            again = run_cell(
                self.lab, worker, spec, jobs, cell_timeout_s(jobs, rate),
                on_result=progress.job_done,
            )  # fmt: skip
            attempts += 1
            if again.contention.other_cores < measured.contention.other_cores:
                measured = again
        raw = f"raw/{spec.key}.jsonl"
        write_raw(self.config.out / raw, measured)
        command = ConsumerCommand(list(worker.service.argv), dict(worker.service.env))
        cell = measured.to_cell(command, raw, attempts)
        if user is not None:
            cell.how_run = how_run(user, spec.pool, worker.service.argv)
        return cell

    def _warm_up(self, spec: CellSpec, jobs: int, guess: float) -> float:
        """Run a few jobs first (imports, connections, pool start-up) and return their rate."""
        assert self.lab.client is not None
        ids = publish(
            self.lab.client, spec.pool, spec.workload, spec.params, jobs, remember=False,
            task=spec.task or None,
        )  # fmt: skip
        metas: dict[str, dict[str, Any]] = {}
        with contextlib.suppress(CeleryTimeout):
            metas = wait_for(self.lab.client, ids, timeout=cell_timeout_s(jobs, guess))
        if len(metas) < len(ids):
            self.lab.purge(spec.pool, set(ids) - set(metas))
            raise BenchError(
                f"warm-up of {spec.pool} on {spec.workload}: {len(ids) - len(metas)} of "
                f"{len(ids)} jobs did not finish; see the logs in {self.lab.run_dir / 'logs'}"
            )
        done = [
            JobTiming.from_envelope(m["result"])
            for m in metas.values()
            if m["status"] == "SUCCESS" and isinstance(m["result"], dict)
        ]
        rate = summarize(done, jobs=jobs, failed=jobs - len(done)).throughput_per_s
        return rate if rate > 0 else guess

    # --- ceilings -----------------------------------------------------------------------

    def _references(self) -> References:
        """Each selected workload's job body, timed in a bare loop against the lab's upstream."""
        config = self.config
        assert self.lab.settings is not None
        url = self.lab.settings.upstream_url
        builtin = config.builtin_workloads
        bodies = calibrate(builtin, config.job_params, url)
        async_bodies = (
            calibrate_async(builtin, config.job_params, url) if "asyncio" in config.pools else {}
        )
        if config.user_jobs:
            names = ", ".join(w.name for w in config.user_jobs)
            self.lab.say(f"timing {names} in a bare loop, no queue (a few seconds)")
        try:
            # the lab's environment: a job that calls the upstream calls the bench's own
            user = calibrate_user(config.user_jobs, self.cores, self.lab.env)
        except ProbeError as exc:
            raise BenchError(str(exc)) from None
        return References(
            cores=self.cores,
            asyncio_cpu_workers=asyncio_cpu_workers(),
            io_latency_ms=config.io_latency_ms,
            bodies=bodies,
            async_bodies=async_bodies,
            method=METHOD,
            user=user,
        )


def _longer_jobs(config: BenchConfig, measured: Measured) -> int | None:
    """More jobs when a sized cell's steady state was shorter than its target (the ramps
    at either end left out: poollab.measure.bench.steady); None when it is fine."""
    if config.jobs is not None or measured.lost:
        return None
    return jobs_for_steady(
        measured.jobs,
        measured.summary.duration_s,
        measured.steady_s,
        config.cell_s,
        config.max_jobs,
    )


def _disturbed(measured: Measured, busy_cores: float) -> bool:
    return measured.contention.other_cores > busy_cores


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def run_bench(
    config: BenchConfig,
    environ: dict[str, str],
    console: Console,
    hooks: BenchHooks | None = None,
    command: list[str] | None = None,
) -> BenchRun:
    return Runner(config, environ, console, hooks).run(command)
