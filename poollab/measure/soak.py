"""``poollab soak``: a steady, bounded load on every pool for minutes; does worker memory level off?

The soak starts its own lab (an embedded Redis unless ``POOLLAB_BROKER_URL`` is given, an
upstream on a free port, a worker per pool), publishes a fixed mix of small jobs at a fixed
rate to each pool, and every ``--interval`` seconds records per pool: the jobs completed and
failed since the last sample (throughput) and the RSS and USS summed over the worker's whole
process tree (psutil). At the end it waits for the jobs still queued, stops the lab and
writes a JSON report and a PNG chart.

Memory "levels off" when RSS stops growing: the report gives the least-squares slope of RSS
over the second half of the run, in MB/min, per pool (the first half holds the warm-up:
imports, pools filling, allocator arenas). A slope that stays clearly above zero over a long
run is a leak. For prefork the remedies are Celery's own: ``--max-tasks-per-child N``
(replace a child after N jobs) and ``--max-memory-per-child KB`` (after a job that left the
child above KB resident), both accepted here and passed to the prefork worker.

The load is bounded: a pool that falls behind by more than ``--max-backlog-s`` seconds of
jobs gets none until it catches up (counted as ``skipped_backlog``), so a slow pool measures
itself, not an ever-growing queue; a publish the broker refused is ``publish_failed``. Both
are ``skipped``. The counts add up: published = completed + failed + pending, and every job
that was due and not skipped was published.

Runs are counted per job id, all run long: every consumer (Celery's Redis backend and the
asyncio consumer alike) stores a result with ``SET`` and ``PUBLISH``es it on the result key's
channel in the same step, so a subscription to ``celery-task-meta-*`` (:class:`RunCounter`)
sees each store, also a second one that overwrites the first before it is read. A job whose
final result is published twice ran twice. Results are read by key (and deleted, so that a
long soak does not fill Redis), the ids are kept.

The soak fails (exit status 1, the reasons printed and in the report's ``verdict``) when a
job is lost (no result after the drain), a job ran twice, more than 1 % of the jobs due to a
pool were skipped, a worker exited, or the run counts are incomplete (the subscription
broke, or a result was read whose publication was never seen).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from rich.console import Console
from rich.table import Table

from poollab.cli import CliError
from poollab.demo.background import BackgroundLoad
from poollab.launcher.cli import parse_pools
from poollab.launcher.lab import Lab, LabError
from poollab.launcher.redis_server import RedisServer, free_port
from poollab.launcher.topology import Service, build_services
from poollab.measure.collect import FINAL_STATES, META_PREFIX, collect, meta_key
from poollab.measure.proctree import ProcessTree, TreeUsage
from poollab.settings import ALL_POOLS, PoolName, Settings
from poollab.stopping import Stop, StopSignals

console = Console(stderr=True)

# the mix every pool gets, in this order, round and round: small jobs of every kind, so that
# a leak in any path (HTTP client, CPU loop, result writing) shows
JOB_MIX: tuple[tuple[str, dict[str, Any]], ...] = (
    ("noop", {"x": 1}),
    ("cpu", {"n": 20_000}),
    ("io", {"ms": 20}),
    ("sleep", {"ms": 10}),
    ("mixed", {"n": 5_000, "ms": 10}),
)
# jobs one pool may be sent in one tick of the publishing loop (after a stall the deficit
# is skipped, not sent as a burst)
_BURST = 50
_TICK_S = 0.05
# the share of due jobs a pool may have skipped (behind, or the broker refused them)
MAX_SKIPPED_SHARE = 0.01
# how long the end waits for the publication of results already read to arrive
_SETTLE_S = 5.0


SOAK_DESCRIPTION = """\
Start a lab of its own, publish a fixed mix of small jobs at a fixed rate to each pool for
MINUTES, sample throughput and the RSS and USS of each worker's process tree, and report the
memory slopes (MB/min over the second half) per pool as JSON and a PNG chart. Counts runs per
job id; exits 1 when a job was lost or ran twice, more than 1 % of the jobs due were skipped,
or a worker exited.
"""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "soak",
        help="hold a steady load on every pool and watch worker memory",
        description=SOAK_DESCRIPTION,
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to hold the load")
    parser.add_argument(
        "--pools", default=",".join(ALL_POOLS), help="comma-separated pools (default: all)"
    )
    parser.add_argument("--rate", type=float, default=10.0, help="jobs per second per pool")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument(
        "--max-backlog-s",
        type=float,
        default=30.0,
        help="a pool more than this many seconds of jobs behind gets none until it catches up",
    )
    parser.add_argument(
        "--drain-s", type=float, default=60.0, help="seconds to wait for queued jobs at the end"
    )
    parser.add_argument(
        "--max-tasks-per-child", type=int, help="prefork: replace a child after N jobs"
    )
    parser.add_argument(
        "--max-memory-per-child",
        type=int,
        help="prefork: replace a child whose resident memory exceeds KB after a job",
    )
    parser.add_argument("--run-dir", type=Path, default=Path(".poollab/soak"), help="logs")
    parser.add_argument(
        "--out", type=Path, default=Path(".poollab/soak/soak.json"), help="JSON report"
    )
    parser.add_argument("--chart", type=Path, help="PNG chart (default: the JSON path, .png)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to become healthy")
    parser.add_argument(
        "--summary", type=Path, help="also write the docs' summary (docs/results/soak/...)"
    )
    parser.set_defaults(func=run)


# --- measuring ----------------------------------------------------------------------------


def tree_memory(root_pid: int) -> TreeUsage | None:
    """The usage of a process and all its descendants; None once it is gone.

    RSS counts pages shared between prefork's children once per child (what ``ps`` and a
    container limit see); USS counts only what each process alone holds (what stopping the
    tree would give back). A leak shows in both.
    """
    try:
        return ProcessTree(root_pid, rescan_s=0.0).usage()
    except psutil.NoSuchProcess:
        return None


def slope_per_min(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, in value per minute; None if undefined."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 60.0


def second_half(
    points: Sequence[tuple[float, float]], duration_s: float
) -> list[tuple[float, float]]:
    return [(t, v) for t, v in points if t >= duration_s / 2]


@dataclass
class PoolLoad:
    """What one pool was sent and what became of it."""

    pool: str
    service: str
    published: int = 0
    skipped: int = 0
    completed: int = 0
    failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    skipped_backlog: int = 0
    publish_failed: int = 0
    # job id -> nothing; the ids whose result has not been read yet
    pending: dict[str, None] = field(default_factory=dict)
    # the ids whose final result has been read (kept: a second run is counted against them)
    done_ids: set[str] = field(default_factory=set)
    samples: list[dict[str, Any]] = field(default_factory=list)
    exited: int | None = None
    _done_at_last_sample: int = 0

    def record(self, task_id: str, meta: dict[str, Any]) -> None:
        self.done_ids.add(task_id)
        if meta.get("status") == "SUCCESS":
            self.completed += 1
        else:
            self.failed += 1
            result = meta.get("result")
            reason = result.get("exc_type", "?") if isinstance(result, dict) else str(result)
            self.failures[reason] = self.failures.get(reason, 0) + 1

    @property
    def done(self) -> int:
        return self.completed + self.failed


def read_results(client: Any, load: PoolLoad) -> None:
    """Record the pool's finished jobs and delete their results: a ten-minute soak would
    otherwise leave tens of thousands of keys in Redis."""
    finished = collect(client, list(load.pending), timeout_s=0).metas
    for task_id, meta in finished.items():
        load.record(task_id, meta)
        del load.pending[task_id]
    if finished:
        client.delete(*map(meta_key, finished))


class RunCounter:
    """Counts the final results stored per job id, from their publication (see the module).

    A thread reads a ``PSUBSCRIBE celery-task-meta-*`` on a connection of its own, started
    (and confirmed) before the first job is published. The connection does not reconnect
    silently: if it breaks, ``broken`` says why and the counts are known to be incomplete.
    """

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0))
        self._pubsub = self._client.pubsub()  # type: ignore[no-untyped-call]
        self.runs: Counter[str] = Counter()
        self.broken: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-run-counter", daemon=True)

    def start(self, timeout_s: float = 10.0) -> RunCounter:
        self._pubsub.psubscribe(META_PREFIX + "*")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = self._pubsub.get_message(timeout=0.1)
            if message is not None and message["type"] == "psubscribe":
                self._thread.start()
                return self
        raise CliError("could not subscribe to the results' channel")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                message = self._pubsub.get_message(timeout=0.2)
            except (redis.RedisError, OSError, ValueError) as exc:
                self.broken = f"the subscription to results broke: {exc}"
                return
            if message is None or message["type"] != "pmessage":
                continue
            channel = message["channel"].decode(errors="replace")
            try:
                meta = json.loads(message["data"])
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(meta, dict) and meta.get("status") in FINAL_STATES:
                self.runs[channel.removeprefix(META_PREFIX)] += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        with contextlib.suppress(redis.RedisError, OSError):
            self._pubsub.close()
        self._client.close()


def unseen(load: PoolLoad, counter: RunCounter) -> list[str]:
    """The ids whose result was read but whose publication the counter has not seen."""
    return [task_id for task_id in load.done_ids if counter.runs[task_id] == 0]


# --- running ------------------------------------------------------------------------------


def prefork_flags(args: argparse.Namespace) -> tuple[str, ...]:
    flags: list[str] = []
    if args.max_tasks_per_child:
        flags += ["--max-tasks-per-child", str(args.max_tasks_per_child)]
    if args.max_memory_per_child:
        flags += ["--max-memory-per-child", str(args.max_memory_per_child)]
    return tuple(flags)


def soak_services(
    settings: Settings, pools: tuple[PoolName, ...], extra_prefork: tuple[str, ...]
) -> list[Service]:
    """The upstream and one consumer per pool; no producer (jobs are published directly)."""
    services = [
        s
        for s in build_services(
            settings, socket.gethostname(), pools, with_flower=False, with_collector=False
        )
        if s.name != "producer"
    ]
    return [
        dataclasses.replace(s, argv=(*s.argv, *extra_prefork)) if s.pool == "prefork" else s
        for s in services
    ]


def _check_args(args: argparse.Namespace) -> None:
    if not 0 < args.minutes <= 24 * 60:
        raise CliError("--minutes: between 0 and 1440")
    if not 0 < args.rate <= 10_000:
        raise CliError("--rate: between 0 and 10000 jobs/s per pool")
    if not 0.2 <= args.interval <= 600:
        raise CliError("--interval: between 0.2 and 600 seconds")
    if args.max_backlog_s <= 0 or args.drain_s < 0:
        raise CliError("--max-backlog-s must be positive and --drain-s not negative")


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    pools = parse_pools(args.pools)
    given = os.environ.get("POOLLAB_BROKER_URL")
    # a Redis of its own unless one is given: on a shared Redis another lab's workers would
    # take the soak's jobs from the same queue names
    embedded = None if given else RedisServer().start()
    broker_url = given or (embedded.url + "/0" if embedded else "")
    upstream_port = free_port()
    env = {
        **os.environ,
        "POOLLAB_BROKER_URL": broker_url,
        "POOLLAB_UPSTREAM_PORT": str(upstream_port),
        "POOLLAB_UPSTREAM_URL": f"http://127.0.0.1:{upstream_port}",
    }
    settings = Settings(
        broker_url=broker_url,
        upstream_port=upstream_port,
        upstream_url=f"http://127.0.0.1:{upstream_port}",
    )
    lab = Lab(settings, env, args.run_dir, on_event=lambda m: console.print(f"[dim]{m}[/]"))
    lab.redis = embedded
    report: dict[str, Any] | None = None
    # the lab's processes are this one's children: what the meter counts beyond them is
    # other programs' load, which the docs' summary reports next to the figures
    with BackgroundLoad() as load, StopSignals() as signals:
        try:
            try:
                lab.start(soak_services(settings, pools, prefork_flags(args)), args.timeout)
            except LabError as exc:
                raise CliError(str(exc)) from None
            report = soak(lab, settings, pools, args)
        except Stop:
            console.print("interrupted: stopping the lab")
        finally:
            # a second signal must not cut the lab's graceful stop short
            signals.ignore()
            lab.stop()
    if report is None:
        return 130
    report["machine"]["other_cores"] = round(load.other_cores, 2)
    write_report(report, args.out, args.chart or args.out.with_suffix(".png"))
    if args.summary:
        from poollab.measure import soak_summary

        soak_summary.write(report, args.summary, load.other_cores)
        console.print(f"wrote {args.summary}")
    print_summary(report)
    reasons = report["verdict"]["reasons"]
    for reason in reasons:
        console.print(f"[red]soak failed: {reason}[/]")
    return 1 if reasons else 0


def soak(
    lab: Lab, settings: Settings, pools: tuple[PoolName, ...], args: argparse.Namespace
) -> dict[str, Any]:
    from poollab.celery_config import make_client
    from poollab.producer.publish import BrokerUnavailable, publish

    # subscribed before the first job is published: every result stored is seen
    counter = RunCounter(settings.result_backend_url).start()
    client = make_client("poollab-soak", settings)
    results = client.backend.client
    loads: dict[str, PoolLoad] = {
        pool: PoolLoad(pool, next(n for n, r in lab.running.items() if r.service.pool == pool))
        for pool in pools
    }
    duration_s = args.minutes * 60.0
    max_pending = max(int(args.rate * args.max_backlog_s), 10)
    command = "poollab soak " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["soak"] else ""
    started = time.monotonic()
    started_wall = time.time()
    next_sample = 0.0
    next_report = 60.0
    sent = 0
    console.print(
        f"soaking {', '.join(pools)} at {args.rate:g} jobs/s each for {args.minutes:g} min"
    )

    def sample(elapsed: float) -> None:
        for load in loads.values():
            read_results(results, load)
            run = lab.running[load.service]
            if load.exited is None and run.process.poll() is not None:
                load.exited = run.process.returncode
                console.print(f"[red]{load.service} exited with {load.exited}[/]")
            memory = tree_memory(run.process.pid) if load.exited is None else None
            done_since = load.done - load._done_at_last_sample
            previous_t = load.samples[-1]["t_s"] if load.samples else 0.0
            span = max(elapsed - previous_t, 1e-9)
            load._done_at_last_sample = load.done
            load.samples.append(
                {
                    "t_s": round(elapsed, 3),
                    "rss_mb": round(memory.rss / 2**20, 3) if memory else None,
                    "uss_mb": round(memory.uss / 2**20, 3) if memory else None,
                    "procs": memory.procs if memory else 0,
                    "completed": load.completed,
                    "failed": load.failed,
                    "pending": len(load.pending),
                    "throughput_per_s": round(done_since / span, 3) if load.samples else None,
                }
            )

    try:
        while True:
            elapsed = time.monotonic() - started
            if elapsed >= duration_s:
                break
            for load in loads.values():
                due = int(elapsed * args.rate) - load.published - load.skipped
                if due <= 0:
                    continue
                # a stall (or a pool far behind) is skipped, not made up with a burst
                allowed = min(due, _BURST, max(max_pending - len(load.pending), 0))
                load.skipped += due - allowed
                load.skipped_backlog += due - allowed
                for _ in range(allowed):
                    kind, params = JOB_MIX[sent % len(JOB_MIX)]
                    sent += 1
                    try:
                        ids = publish(client, load.pool, kind, params, 1, remember=False)
                    except BrokerUnavailable as exc:
                        # sent before the failure: it may well run, so it is counted
                        ids = exc.published
                        if not ids:
                            load.skipped += 1
                            load.publish_failed += 1
                            continue
                    load.published += 1
                    load.pending[ids[0]] = None
            if elapsed >= next_sample:
                sample(elapsed)
                next_sample += args.interval
            if elapsed >= next_report:
                _progress(loads, elapsed)
                next_report += 60.0
            time.sleep(_TICK_S)
        sample(time.monotonic() - started)
        # the load stops; what is still queued gets --drain-s to finish (not sampled: the
        # slope is about memory under load)
        deadline = time.monotonic() + args.drain_s
        while any(load.pending for load in loads.values()) and time.monotonic() < deadline:
            time.sleep(0.5)
            for load in loads.values():
                read_results(results, load)
        # the publication of a result read last may still be on its way to the counter
        deadline = time.monotonic() + _SETTLE_S
        while counter.broken is None and time.monotonic() < deadline:
            if not any(unseen(load, counter) for load in loads.values()):
                break
            time.sleep(0.05)
        if lab.redis is None:  # a Redis it was given: its own unfinished jobs go, nothing else
            from poollab.measure.queues import remove_leftovers

            leftovers = {load.pool: list(load.pending) for load in loads.values()}
            console.print(remove_leftovers(settings.broker_url, leftovers, "soak"))
    finally:
        counter.stop()
        client.close()
    return build_report(loads, args, duration_s, started_wall, command, settings, counter)


def _progress(loads: dict[str, PoolLoad], elapsed: float) -> None:
    parts = []
    for load in loads.values():
        last = load.samples[-1] if load.samples else {}
        parts.append(f"{load.pool} {load.done}/{load.published} {last.get('rss_mb') or 0:.0f}MB")
    console.print(f"[dim]{elapsed / 60:4.1f} min: " + ", ".join(parts) + "[/]")


def build_report(
    loads: dict[str, PoolLoad],
    args: argparse.Namespace,
    duration_s: float,
    started_wall: float,
    command: str,
    settings: Settings,
    counter: RunCounter,
) -> dict[str, Any]:
    pools: dict[str, Any] = {}
    reasons: list[str] = []
    if counter.broken is not None:
        reasons.append(counter.broken)
    for pool, load in loads.items():
        rss = [(s["t_s"], s["rss_mb"]) for s in load.samples if s["rss_mb"] is not None]
        uss = [(s["t_s"], s["uss_mb"]) for s in load.samples if s["uss_mb"] is not None]
        window = second_half(rss, duration_s)
        slope = slope_per_min(window)
        uss_slope = slope_per_min(second_half(uss, duration_s))
        rates = [s["throughput_per_s"] for s in load.samples if s["throughput_per_s"] is not None]
        runs = {task_id: counter.runs[task_id] for task_id in (*load.done_ids, *load.pending)}
        twice = sorted(task_id for task_id, n in runs.items() if n > 1)
        not_seen = unseen(load, counter)
        due = load.published + load.skipped
        skipped_share = load.skipped / due if due else 0.0
        reasons += _pool_reasons(load, twice, not_seen, skipped_share)
        pools[pool] = {
            "service": load.service,
            "concurrency": settings.concurrency(pool),  # type: ignore[arg-type]
            "counts": {
                "published": load.published,
                "skipped": load.skipped,
                "completed": load.completed,
                "failed": load.failed,
                "pending": len(load.pending),
                "skipped_backlog": load.skipped_backlog,
                "publish_failed": load.publish_failed,
                "skipped_share": round(skipped_share, 5),
            },
            "runs": {
                "counted": sum(runs.values()),
                "ran_twice": len(twice),
                "ran_twice_ids": twice[:20],
                "max_per_id": max(runs.values(), default=0),
                "unseen": len(not_seen),
            },
            "failures": load.failures,
            "exited": load.exited,
            "throughput_per_s": {
                "mean": round(load.done / duration_s, 3),
                "min_interval": min(rates) if rates else None,
                "max_interval": max(rates) if rates else None,
            },
            "rss_mb": {
                "first": rss[0][1] if rss else None,
                "last": rss[-1][1] if rss else None,
                "peak": max(v for _, v in rss) if rss else None,
                "slope_mb_per_min": _round(slope),
                "slope_window_s": [window[0][0], window[-1][0]] if window else None,
                "uss_slope_mb_per_min": _round(uss_slope),
            },
            "uss_mb": {
                "first": uss[0][1] if uss else None,
                "last": uss[-1][1] if uss else None,
                "peak": max(v for _, v in uss) if uss else None,
                "slope_mb_per_min": _round(uss_slope),
            },
            "samples": load.samples,
        }
    return {
        "command": command,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started_wall)),
        "minutes": args.minutes,
        "rate_per_pool_per_s": args.rate,
        "interval_s": args.interval,
        "job_mix": [{"kind": k, "params": p} for k, p in JOB_MIX],
        "prefork_flags": list(prefork_flags(args)),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "pools": pools,
        "verdict": {"ok": not reasons, "reasons": reasons},
    }


def _pool_reasons(
    load: PoolLoad, twice: list[str], not_seen: list[str], skipped_share: float
) -> list[str]:
    """Why this pool's part of the soak failed (nothing when it passed)."""
    reasons = []
    if load.pending:
        reasons.append(f"{load.pool}: {len(load.pending)} jobs have no result (lost)")
    if twice:
        reasons.append(f"{load.pool}: {len(twice)} jobs ran more than once, e.g. {twice[0]}")
    if skipped_share > MAX_SKIPPED_SHARE:
        reasons.append(
            f"{load.pool}: {load.skipped} of {load.published + load.skipped} jobs due were "
            f"skipped ({skipped_share:.1%} > {MAX_SKIPPED_SHARE:.0%}: {load.skipped_backlog} "
            f"behind, {load.publish_failed} refused by the broker); the load was not held"
        )
    if load.exited is not None:
        reasons.append(f"{load.pool}: its worker exited with {load.exited}")
    if not_seen:
        reasons.append(
            f"{load.pool}: {len(not_seen)} results were read whose publication was not seen: "
            "runs could not be counted"
        )
    return reasons


def _round(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 4)


# --- output -------------------------------------------------------------------------------


def write_report(report: dict[str, Any], out: Path, chart: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    draw_chart(report, chart)
    console.print(f"wrote {out} and {chart}")


def draw_chart(report: dict[str, Any], path: Path) -> None:
    """Three panels over time, a line per pool: RSS of the process tree, its growth since
    the first sample (where a leak shows, whatever the pool's size), and throughput."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 10), layout="constrained")
    rss_ax, growth_ax, tput_ax = fig.subplots(3, 1, sharex=True)
    for pool, data in report["pools"].items():
        samples = data["samples"]
        rss = [(s["t_s"] / 60, s["rss_mb"]) for s in samples if s["rss_mb"] is not None]
        rate = [
            (s["t_s"] / 60, s["throughput_per_s"])
            for s in samples
            if s["throughput_per_s"] is not None
        ]
        slope = data["rss_mb"]["slope_mb_per_min"]
        label = f"{pool} (slope {slope:+.3f} MB/min)" if slope is not None else pool
        if rss:
            rss_ax.plot(*zip(*rss, strict=True), label=pool, linewidth=1.4)
            first = rss[0][1]
            growth = [(t, v - first) for t, v in rss]
            growth_ax.plot(*zip(*growth, strict=True), label=label, linewidth=1.4)
        if rate:
            tput_ax.plot(*zip(*rate, strict=True), label=pool, linewidth=1.0)
    rss_ax.set_ylabel("RSS of the process tree (MB)")
    rss_ax.set_title(
        f"Soak: {report['rate_per_pool_per_s']:g} jobs/s per pool for {report['minutes']:g} min",
        fontsize=10,
    )
    rss_ax.legend(fontsize=8, loc="center right")
    growth_ax.set_ylabel("RSS growth since start (MB)")
    growth_ax.axvspan(report["minutes"] / 2, report["minutes"], color="0.93", zorder=0)
    growth_ax.set_title("shaded: the second half, over which the slope is fitted", fontsize=9)
    growth_ax.legend(fontsize=8, loc="upper left")
    tput_ax.set_ylabel(f"completed jobs/s (per {report['interval_s']:g} s)")
    tput_ax.set_xlabel("minutes")
    tput_ax.legend(fontsize=8, loc="lower right")
    for ax in (rss_ax, growth_ax, tput_ax):
        ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def print_summary(report: dict[str, Any]) -> None:
    table = Table(
        title=f"Soak: {report['minutes']:g} min at {report['rate_per_pool_per_s']:g} jobs/s per "
        "pool (RSS in MB; MB/min: slope over the second half)"
    )
    for column in (
        "pool",
        "sent",
        "done",
        "failed",
        "pending",
        "skipped",
        "jobs/s",
        "RSS first",
        "RSS last",
        "RSS peak",
        "MB/min",
        "USS MB/min",
        "ran twice",
    ):
        table.add_column(column, justify="right")
    for pool, data in report["pools"].items():
        counts, rss, uss = data["counts"], data["rss_mb"], data["uss_mb"]
        table.add_row(
            pool,
            str(counts["published"]),
            str(counts["completed"]),
            str(counts["failed"]),
            str(counts["pending"]),
            str(counts["skipped"]),
            f"{data['throughput_per_s']['mean']:.1f}",
            *(f"{rss[k]:.1f}" if rss[k] is not None else "-" for k in ("first", "last", "peak")),
            f"{rss['slope_mb_per_min']:+.3f}" if rss["slope_mb_per_min"] is not None else "-",
            f"{uss['slope_mb_per_min']:+.3f}" if uss["slope_mb_per_min"] is not None else "-",
            str(data["runs"]["ran_twice"]),
        )
    Console().print(table)
