"""The consumer against its peers, side by side in one run on one Redis.

``python -m poollab.measure.peers`` starts its own Redis and upstream, then for each
workload (noop; io with a fixed upstream latency) and mode runs every system's own worker
at the same concurrency, results stored:

- **drain**: the queue is filled first, then the worker starts. Rate = completed /
  (last finish - worker start); "steady" leaves the worker's start-up out: completed /
  (last finish - first job start).
- **e2e**: the worker starts and answers a probe job, then a publisher process sends the
  jobs while it runs. Rate = completed / (last finish - first publish). The worker's CPU
  time over the run is reported per job.

Systems: the consumer (asyncio and uvloop loops), Celery's gevent pool, arq, taskiq and a
bare redis.asyncio pop/push loop (the floor). arq and taskiq run from ``.venv-peers``
(created on first use from the ``peers`` extra). Every wait is bounded; loopback only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
import redis

from poollab.demo.background import BackgroundLoad
from poollab.launcher.redis_server import RedisServer, free_port
from poollab.measure.peers import peers_venv, record
from poollab.measure.peers.systems import (
    SYSTEMS,
    Context,
    System,
    done,
    forget,
    job_ids,
    publish_argv,
    queued,
    spans,
)
from poollab.measure.proctree import tree_cpu_seconds

KINDS = ("noop", "io")
MODES = ("drain", "e2e")
PROBE_TIMEOUT_S = 90.0
POLL_S = 0.2


@dataclass
class Case:
    system: str
    kind: str
    mode: str
    jobs: int
    completed: int = 0
    failed: int = 0
    rate: float = 0.0
    rate_steady: float = 0.0
    boot_s: float = 0.0
    publish_rate: float = 0.0
    cpu_ms_per_job: float = 0.0
    load1: float = 0.0
    note: str = ""


class Run:
    def __init__(
        self, args: argparse.Namespace, url: str, upstream: str, peers_python: Path
    ) -> None:
        self.args = args
        self.redis = redis.Redis.from_url(url)
        self.ctx = Context(sys.executable, peers_python, args.concurrency, not args.no_task_events)
        self.env = {
            **os.environ,
            "POOLLAB_BROKER_URL": url,
            "POOLLAB_RESULT_BACKEND": "",
            "POOLLAB_UPSTREAM_URL": upstream,
            "POOLLAB_TASK_EVENTS": "true" if self.ctx.task_events else "false",
            "BENCH_REDIS_URL": url,
            "BENCH_UPSTREAM_URL": upstream,
            "BENCH_CONCURRENCY": str(args.concurrency),
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(peers_venv.REPO), os.environ.get("PYTHONPATH")])
            ),
        }

    def jobs_for(self, kind: str) -> int:
        return int(self.args.noop_jobs if kind == "noop" else self.args.io_jobs)

    def _publish(self, system: System, run: str, count: int, kind: str) -> subprocess.Popen[str]:
        argv = publish_argv(system, self.ctx, run, count, kind, self.args.latency_ms)
        return subprocess.Popen(argv, env=self.env, stdout=subprocess.PIPE, text=True)

    def _published(self, process: subprocess.Popen[str]) -> dict[str, float]:
        out, _ = process.communicate(timeout=self.args.run_timeout)
        if process.returncode != 0:
            raise RuntimeError(f"publisher exited {process.returncode}")
        timings: dict[str, float] = json.loads(out.strip().splitlines()[-1])
        return timings

    def _start(self, system: System, log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                system.argv(self.ctx), env={**self.env, **system.env}, stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip

    def _wait(
        self, system: System, worker: subprocess.Popen[bytes], ids: list[str], timeout_s: float
    ) -> int:
        deadline = time.monotonic() + timeout_s
        count = 0
        while time.monotonic() < deadline:
            count = done(self.redis, system, ids)
            if count >= len(ids) or worker.poll() is not None:
                break
            time.sleep(POLL_S)
        return count

    def case(self, system: System, kind: str, mode: str, log: Path) -> Case:
        self.redis.flushdb()
        count = self.jobs_for(kind)
        run = f"{system.name}-{kind}-{mode}"
        ids = job_ids(run, count)
        result = Case(system.name, kind, mode, count, load1=os.getloadavg()[0])
        worker: subprocess.Popen[bytes] | None = None
        try:
            if mode == "drain":
                self._published(self._publish(system, run, count, kind))
                if queued(self.redis, system) != count:
                    result.note = f"queue held {queued(self.redis, system)} of {count}"
                began = time.time()
                worker = self._start(system, log)
                result.completed = self._wait(system, worker, ids, self.args.run_timeout)
            else:
                worker = self._start(system, log)
                self._published(self._publish(system, "probe", 1, "noop"))
                probe = job_ids("probe", 1)
                if self._wait(system, worker, probe, PROBE_TIMEOUT_S) < 1:
                    result.note = "worker never answered the probe"
                    return result
                forget(self.redis, system, probe)
                cpu_before = tree_cpu_seconds(worker.pid)
                publisher = self._publish(system, run, count, kind)
                result.completed = self._wait(system, worker, ids, self.args.run_timeout)
                cpu = tree_cpu_seconds(worker.pid) - cpu_before
                timings = self._published(publisher)
                began = timings["started"]
                result.publish_rate = count / max(timings["finished"] - timings["started"], 1e-9)
                result.cpu_ms_per_job = 1000 * cpu / max(result.completed, 1)
        finally:
            if worker is not None:
                stop(worker)
        got, result.failed = spans(self.redis, system, ids)
        if got:
            first_start = min(s for s, _ in got)
            last_finish = max(f for _, f in got)
            result.rate = len(got) / max(last_finish - began, 1e-9)
            result.rate_steady = len(got) / max(last_finish - first_start, 1e-9)
            result.boot_s = first_start - began
        if result.completed < count:
            result.note = (result.note + f" timed out: {result.completed}/{count} done").strip()
        return result


def stop(process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout_s)
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def start_upstream(port: int) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "poollab.cli", "serve", "upstream", "--port", str(port)]
    process = subprocess.Popen(
        [*argv, "--loop", "uvloop"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=0.5):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("upstream did not start")


# --- reporting -------------------------------------------------------------------------


def medians(cases: list[Case]) -> dict[tuple[str, str, str], Case]:
    grouped: dict[tuple[str, str, str], list[Case]] = {}
    for case in cases:
        grouped.setdefault((case.system, case.kind, case.mode), []).append(case)
    out = {}
    for key, group in grouped.items():
        # the lower median: with two runs, the slower one (no best-of-n)
        middle = sorted(group, key=lambda c: c.rate)[(len(group) - 1) // 2]
        out[key] = middle
    return out


def table(cases: list[Case], systems: list[str]) -> str:
    best = medians(cases)

    def cell(system: str, kind: str, mode: str, field: str = "rate") -> str:
        case = best.get((system, kind, mode))
        if case is None:
            return "–"
        value = float(getattr(case, field))
        text = f"{value:,.0f}" if field != "cpu_ms_per_job" else f"{value:.2f}"
        return text + (" *" if case.note else "")

    columns = record.COLUMNS
    lines = [
        "| system | " + " | ".join(title for title, *_ in columns) + " |",
        "| --- |" + " ---: |" * len(columns),
    ]
    for system in systems:
        cells = [cell(system, kind, mode, field) for _, kind, mode, field in columns]
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    notes = [f"- {c.system} {c.kind} {c.mode}: {c.note}" for c in cases if c.note]
    publish = [
        f"{c.system} {c.kind}: {c.publish_rate:,.0f}/s"
        for c in best.values()
        if c.mode == "e2e" and c.publish_rate
    ]
    extra = ["", "Publisher rates (e2e): " + "; ".join(publish)] if publish else []
    return "\n".join(lines + (["", "\\* see notes:", *notes] if notes else []) + extra)


def ratios(cases: list[Case]) -> list[str]:
    best = medians(cases)
    lines = []
    for kind in KINDS:
        for mode in MODES:
            ours = [best[k] for k in best if k[1:] == (kind, mode) and k[0].startswith("consumer-")]
            if not ours:
                continue
            top = max(ours, key=lambda c: c.rate)
            parts = [f"{kind} {mode}: {top.system} {top.rate:,.0f}/s"]
            for peer in record.PEERS:
                other = best.get((peer, kind, mode))
                if other is not None and other.rate > 0:
                    parts.append(f"{top.rate / other.rate:.2f}x {peer}")
            lines.append("- " + ", ".join(parts))
    return lines


def _worker_command(system: System, ctx: Context) -> list[str]:
    """The worker's environment and command as a reader would type it: a venv's absolute path
    says nothing to them, so programs go by their names."""
    env = [f"{key}={value}" for key, value in system.env.items()]
    return [*env, *(Path(w).name if w.startswith("/") else w for w in system.argv(ctx))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m poollab.measure.peers", description=__doc__)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--noop-jobs", type=int, default=10_000)
    parser.add_argument("--io-jobs", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--run-timeout", type=float, default=120.0, help="seconds one case may take"
    )
    parser.add_argument("--no-task-events", action="store_true")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(tempfile.gettempdir()) / "poollab-bench-peers",
        help="directory for worker logs, results.json and table.md",
    )
    parser.add_argument(
        "--summary",
        type=Path,
        help="also write the small summary the docs are rendered from (docs/results/peers/...)",
    )
    args = parser.parse_args(argv)
    systems = [s for s in args.systems.split(",") if s]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    if any(SYSTEMS[s].peers_venv for s in systems):
        print("peers' virtualenv:", peers_venv.ensure(), file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    port = free_port()
    upstream = start_upstream(port)
    load = BackgroundLoad()
    try:
        with load, RedisServer() as server:
            run = Run(args, server.url + "/0", f"http://127.0.0.1:{port}", peers_venv.python())
            for repeat in range(args.repeat):
                for kind in args.kinds.split(","):
                    for mode in args.modes.split(","):
                        for name in systems:
                            case = run.case(SYSTEMS[name], kind, mode, args.out / f"{name}.log")
                            cases.append(case)
                            print(
                                f"[{repeat + 1}/{args.repeat}] {name:17} {kind:4} {mode:5} "
                                f"{case.rate:9,.0f}/s (steady {case.rate_steady:,.0f}/s, "
                                f"{case.completed}/{case.jobs}, load {case.load1:.1f}) {case.note}",
                                file=sys.stderr,
                                flush=True,
                            )
    finally:
        stop(upstream)
    report = table(cases, systems) + "\n\n" + "\n".join(ratios(cases))
    (args.out / "results.json").write_text(json.dumps([asdict(c) for c in cases], indent=1))
    (args.out / "table.md").write_text(report + "\n")
    if args.summary:
        peers = peers_venv.python() if any(SYSTEMS[s].peers_venv for s in systems) else None
        given = list(argv or sys.argv[1:])
        workers = {name: _worker_command(SYSTEMS[name], run.ctx) for name in systems}
        record.write(args.summary, given, cases, systems, load.other_cores, peers, workers)
    print(report)
    return 0
