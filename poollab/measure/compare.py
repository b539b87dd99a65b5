"""``poollab load --compare``: every pool offered the same jobs/s on a fixed schedule.

An open model: one publisher sends job ``i`` at ``start + i / (rate × pools)``, to pool
``i mod pools``, whatever has completed, so each pool is offered exactly ``rate`` jobs/s and
a slow pool shows as a growing queue and latency, not as a lower offered rate. Locust's
``constant_pacing``/``constant_throughput`` cannot give that: they pace each user's loop,
and a user still waits for its job, so once latency exceeds the pacing the offered rate
falls with it (a closed loop again). The publisher never waits for a result; the results
are read afterwards from the backend, and every job's timings come from its own result
envelope (sent → started → finished, stamped by the producer and the consumer).

Bounded on every side: the schedule has ``rate × run time × pools`` jobs, refused above
``--max-jobs``; the send loop stops at the end of the schedule or at a hard deadline if the
publisher falls behind; the results are waited for at most ``--job-timeout`` seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlparse

import redis

from poollab import jobs
from poollab.cli import CliError
from poollab.measure.charts import OTHER_COLOR, POOL_COLORS
from poollab.measure.collect import Collected, collect, job_timing
from poollab.measure.load import (
    COMPARE_DEFAULT_MAX_JOBS,
    COMPARE_DEFAULT_RATE,
    COMPARE_MAX_JOBS,
    COMPARE_MAX_RATE,
    COMPARE_MAX_RUN_S,
    find_locustfile,
    load_mixer,
    parse_timespan,
)
from poollab.measure.samples import Resources, read_samples, summarize_window
from poollab.settings import NoBrokerError, Settings, lab_client_settings
from poollab.timings import JobTiming, percentile, summarize

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
FILES = ("load-compare.json", "load-compare.md", "load-compare.png")
# how far behind its schedule the publisher may fall before it stops sending
MAX_LAG_S = 10.0
# samples read each side of the window (the consumers sample every 0.25-1 s)
SAMPLE_SLACK_S = 3.0


@dataclass(frozen=True)
class CompareSpec:
    pools: tuple[str, ...]
    kinds: tuple[str, ...]
    params: dict[str, dict[str, Any]]
    rate: float  # jobs/s offered to each pool
    duration_s: float
    drain_s: float

    @property
    def per_pool(self) -> int:
        return round(self.rate * self.duration_s)

    @property
    def total(self) -> int:
        return self.per_pool * len(self.pools)

    def schedule(self) -> Iterator[tuple[float, str, str]]:
        """(seconds after the start, pool, kind) of every job, in sending order.

        The pools take turns, so each is offered one job every ``1 / rate`` seconds,
        offset from the next pool's by ``1 / (rate × pools)``; each pool takes the kinds
        in turn.
        """
        count = len(self.pools)
        interval = 1.0 / (self.rate * count)
        for i in range(self.total):
            yield i * interval, self.pools[i % count], self.kinds[(i // count) % len(self.kinds)]


@dataclass
class Published:
    """What went out: each job's pool and kind, and how well the publisher kept time."""

    pool_of: dict[str, str] = field(default_factory=dict)
    kind_of: dict[str, str] = field(default_factory=dict)
    sent_at: dict[str, float] = field(default_factory=dict)
    start: float = 0.0  # wall clock of the schedule's start
    lags_s: list[float] = field(default_factory=list)
    stopped: str | None = None  # why the publisher stopped before the end of its schedule

    def ids(self, pool: str | None = None) -> list[str]:
        return [i for i, p in self.pool_of.items() if pool is None or p == pool]


def resolve_spec(args: argparse.Namespace) -> CompareSpec:
    """The run from the shared ``poollab load`` options, checked before anything is sent."""
    run_s = parse_timespan(args.run_time)
    if run_s > COMPARE_MAX_RUN_S:
        raise CliError(f"--run-time with --compare: at most {COMPARE_MAX_RUN_S} s")
    rate = COMPARE_DEFAULT_RATE if args.rate is None else float(args.rate)
    if not 0 < rate <= COMPARE_MAX_RATE:
        raise CliError(f"--rate must be in (0, {COMPARE_MAX_RATE:g}] jobs/s per pool")
    max_jobs = COMPARE_DEFAULT_MAX_JOBS if args.max_jobs is None else args.max_jobs
    if not 1 <= max_jobs <= COMPARE_MAX_JOBS:
        raise CliError(f"--max-jobs must be in [1, {COMPARE_MAX_JOBS}]")
    mixer = load_mixer(find_locustfile(None))
    env = os.environ
    pools_text = args.pools or env.get("POOLLAB_LOAD_POOLS") or mixer.default_pools()
    kinds_text = args.kinds or env.get("POOLLAB_LOAD_KINDS") or mixer.DEFAULT_KINDS
    params_text = args.params if args.params is not None else env.get("POOLLAB_LOAD_PARAMS", "")
    try:
        weights = mixer.parse_pools(pools_text)
        kinds = mixer.parse_kinds(kinds_text)
        params = mixer.parse_params(params_text, kinds)
    except mixer.MixError as exc:
        raise CliError(str(exc)) from None
    pools = [pool for pool, _ in weights]
    if any(weight != 1 for _, weight in weights) or len(set(pools)) != len(pools):
        raise CliError(
            "--pools with --compare: each pool once, no weights (every pool is offered the "
            f"same rate), not {pools_text!r}"
        )
    spec = CompareSpec(tuple(pools), tuple(kinds), params, rate, float(run_s), args.job_timeout)
    if spec.per_pool < 1:
        raise CliError("--rate × --run-time must give each pool at least one job")
    if spec.total > max_jobs:
        raise CliError(
            f"{spec.total} jobs ({rate:g}/s × {run_s} s × {len(pools)} pools) is more than "
            f"--max-jobs {max_jobs}; lower --rate or --run-time, or raise --max-jobs "
            f"(at most {COMPARE_MAX_JOBS})"
        )
    return spec


def check_loopback(settings: Settings) -> None:
    """The comparison floods whatever broker it is pointed at: only a local one."""
    for name, url in (
        ("POOLLAB_BROKER_URL", settings.broker_url),
        ("POOLLAB_RESULT_BACKEND", settings.result_backend_url),
    ):
        host = urlparse(url).hostname
        if host not in LOOPBACK:
            raise CliError(f"--compare runs against a loopback broker only; {name} is on {host}")


def publish_paced(
    app: Any,
    spec: CompareSpec,
    on_sent: Callable[[int], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Published:
    """Send the schedule's jobs on time, never waiting for a result.

    A job that is due is sent at once, however late (the schedule, not the sender, sets
    the offered rate); each job's header carries its real send time, so a late send never
    flatters its latency. The loop is bounded by the schedule's length and by a deadline
    ``MAX_LAG_S`` past the schedule's end.
    """
    from kombu.exceptions import OperationalError

    done = Published()
    began = clock()
    done.start = time.time()
    hard_stop = began + spec.duration_s + min(MAX_LAG_S, spec.duration_s)
    with app.producer_or_acquire() as producer:
        for count, (offset, pool, kind) in enumerate(spec.schedule()):
            due = began + offset
            now = clock()
            if due > now:
                sleep(due - now)
                now = clock()
            if now > hard_stop:
                done.stopped = (
                    f"the publisher fell {now - due:.1f} s behind its schedule and stopped "
                    f"after {count} of {spec.total} jobs"
                )
                break
            task_id = str(uuid.uuid4())
            stamp = time.time()
            try:
                app.send_task(
                    jobs.CATALOGUE[kind].task_name,
                    kwargs=spec.params[kind],
                    queue=pool,
                    task_id=task_id,
                    headers={jobs.SENT_HEADER: stamp},
                    producer=producer,
                    retry=False,
                )
            except (OperationalError, OSError) as exc:
                done.stopped = f"the broker failed after {count} jobs: {exc}"
                break
            done.lags_s.append(max(now - due, 0.0))
            done.pool_of[task_id] = pool
            done.kind_of[task_id] = kind
            done.sent_at[task_id] = stamp
            if on_sent is not None:
                on_sent(count + 1)
    return done


def _timing(meta: dict[str, Any] | None) -> JobTiming | None:
    timing = job_timing(meta) if meta is not None else None
    # every job here is stamped when sent; one without the stamp has no latency to give
    return timing if timing is not None and timing.sent is not None else None


def _latency_ms(timings: Sequence[JobTiming], waited_s: Sequence[float] = ()) -> dict[str, float]:
    """Percentiles of finished − sent; ``waited_s``: how long each unfinished job had waited.

    An unfinished job counts with the time it had waited when the collection gave up: a
    lower bound of its latency, so the percentiles are lower bounds too (never the
    flattering figure that leaving the slowest jobs out would give).
    """
    values = [(t.finished - t.sent) for t in timings if t.sent is not None]
    ordered = sorted(v * 1000 for v in [*values, *waited_s])
    return {f"p{q}": round(percentile(ordered, q), 1) for q in (50, 95, 99)} | {
        "max": round(ordered[-1], 1) if ordered else math.nan
    }


def pool_row(
    pool: str,
    spec: CompareSpec,
    published: Published,
    collected: Collected,
    end: float,
    gave_up: float,
) -> dict[str, Any]:
    """One pool's figures; ``end``: the sending window's end, ``gave_up``: the collection's."""
    ids = published.ids(pool)
    timings: list[JobTiming] = []
    by_kind: dict[str, list[JobTiming]] = {kind: [] for kind in spec.kinds}
    waited: dict[str, list[float]] = {kind: [] for kind in spec.kinds}
    failed = 0
    for task_id in ids:
        meta = collected.metas.get(task_id)
        timing = _timing(meta)
        kind = published.kind_of[task_id]
        if timing is not None:
            timings.append(timing)
            by_kind[kind].append(timing)
        elif meta is not None:
            failed += 1
        else:
            waited[kind].append(max(gave_up - published.sent_at[task_id], 0.0))
    unfinished = len(ids) - len(timings) - failed
    all_waited = [w for found in waited.values() for w in found]
    window_s = spec.duration_s
    in_window = sum(1 for t in timings if t.finished <= end)
    started_by_end = sum(1 for t in timings if t.started <= end)
    summary = summarize(timings, jobs=len(ids), failed=failed, first_sent=published.start)
    return {
        "pool": pool,
        "offered_per_s": spec.rate,
        "planned": spec.per_pool,
        "sent": len(ids),
        "completed": len(timings),
        "completed_in_window": in_window,
        # completions inside the sending window over its length: what the pool kept up with
        "achieved_per_s": round(in_window / window_s, 2),
        "failed": failed,
        # sent by the window's end and not started by then: the backlog when sending stopped
        "queued_at_end": len(ids) - failed - started_by_end,
        # no result when the wait for the last ones ran out: still queued, or lost
        "unfinished": unfinished,
        "latency_ms": _latency_ms(timings, all_waited),
        # the percentiles count unfinished jobs at the time they had waited: lower bounds
        "latency_lower_bound": bool(all_waited),
        "queue_wait_ms": summary.queue_wait_ms,
        "run_ms": summary.run_ms,
        "last_finished": max((t.finished for t in timings), default=None),
        "processes": summary.pids,
        "kinds": {
            kind: {"completed": len(found), "latency_ms": _latency_ms(found, waited[kind])}
            for kind, found in by_kind.items()
        },
    }


def withdraw(client: redis.Redis, pool: str, ids: set[str]) -> int:
    """Take this run's jobs still waiting in the pool's queue off it, and only those.

    Left there they would run after the comparison, and the next run would start behind
    a backlog. kombu keeps a queue as a Redis list of JSON messages, the task id in their
    headers; a message a consumer pops meanwhile is simply not found (LREM removes 0).
    Returns how many were taken off.
    """
    if not ids:
        return 0
    pipe = client.pipeline(transaction=False)
    # bounded: no more entries than this run can have sent, plus what others queued
    for raw in client.lrange(pool, 0, COMPARE_MAX_JOBS * 2):
        try:
            message = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            continue
        headers = message.get("headers") if isinstance(message, dict) else None
        if isinstance(headers, dict) and headers.get("id") in ids:
            # the stored bytes, exactly (redis-py's hints say str; bytes are sent as they are)
            pipe.lrem(pool, 1, cast(str, raw))
    return sum(int(n) for n in pipe.execute())


def wait_for_sample_after(client: redis.Redis, pools: Sequence[str], end: float) -> None:
    """Wait (at most a few seconds) until each pool has written a sample taken after ``end``.

    Only for pools that write samples at all: one silent for the whole run is not waited for.
    """
    deadline = time.monotonic() + SAMPLE_SLACK_S
    waiting = [p for p in pools if read_samples(client, p, end - 30.0, end + 60.0)]
    while waiting and time.monotonic() < deadline:
        waiting = [p for p in waiting if not read_samples(client, p, end, end + 60.0)]
        if waiting:
            time.sleep(0.2)


def pool_resources(client: redis.Redis, pool: str, start: float, end: float) -> dict[str, Any]:
    """Memory and CPU of the pool's consumers (each one's process tree) over a window.

    From the samples each consumer writes to ``poollab:samples:<pool>``, one summary per
    node (a consumer), added up: the
    pool's memory is all its consumers' memory, its cores all their cores. The idle figure
    is from the samples of the few seconds before the window.
    """
    samples = read_samples(client, pool, start - SAMPLE_SLACK_S, end + SAMPLE_SLACK_S)
    by_node: dict[str, list[Any]] = {}
    for sample in samples:
        by_node.setdefault(sample.node, []).append(sample)
    found: list[Resources] = []
    for own in by_node.values():
        own.sort(key=lambda s: s.t)
        idle = [s for s in own if s.t < start]
        figures = summarize_window(idle, own, start, end)
        if figures.samples:
            found.append(figures)
    if not found:
        return {"nodes": 0, "samples": 0, "uss_mb": {}, "rss_mb": {}, "cpu_cores": None}

    def total(name: str, key: str) -> float:
        return round(float(sum(getattr(r, name)[key] for r in found)), 1)

    return {
        "nodes": len(found),
        "samples": sum(r.samples for r in found),
        "processes": sum(r.procs for r in found),
        "uss_mb": {k: total("uss_mb", k) for k in ("peak", "mean", "idle")},
        "rss_mb": {k: total("rss_mb", k) for k in ("peak", "mean", "idle")},
        "cpu_cores": round(sum(r.cpu_cores for r in found), 2),
    }


def _clean(value: Any) -> Any:
    """NaN → None, so the JSON is JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def run_compare(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from poollab.celery_config import make_client
    from poollab.launcher.redis_server import answers

    spec = resolve_spec(args)
    try:
        settings = lab_client_settings()
    except NoBrokerError as exc:
        raise CliError(str(exc)) from None
    check_loopback(settings)
    if not answers(settings.broker_url):
        raise CliError(f"no Redis answers at {settings.broker_url} (POOLLAB_BROKER_URL)")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    app = make_client("poollab-compare", settings)
    results = redis.Redis.from_url(settings.result_backend_url, socket_timeout=10.0)
    broker = redis.Redis.from_url(settings.broker_url, socket_timeout=10.0)
    print(
        f"compare: {spec.rate:g} jobs/s offered to each of {', '.join(spec.pools)} for "
        f"{spec.duration_s:g} s ({spec.total} jobs: {', '.join(spec.kinds)} in turn), then "
        f"at most {spec.drain_s:g} s for the last results"
    )
    progress = Progress(
        TextColumn("{task.description:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    try:
        with progress:
            sending = progress.add_task("sent", total=spec.total)
            done = progress.add_task("results", total=spec.total)
            step = max(1, spec.total // 200)

            def sent(count: int) -> None:
                if count % step == 0 or count == spec.total:
                    progress.update(sending, completed=count)

            published = publish_paced(app, spec, on_sent=sent)
            progress.update(sending, completed=len(published.pool_of))
            collected = collect(
                results,
                published.ids(),
                spec.drain_s,
                on_progress=lambda n: progress.update(done, completed=n),
            )
        gave_up = time.time()
        end = published.start + spec.duration_s
        wait_for_sample_after(broker, spec.pools, end)
        rows = []
        for pool in spec.pools:
            row = pool_row(pool, spec, published, collected, end, gave_up)
            row["withdrawn"] = withdraw(
                broker, pool, {i for i in collected.pending if published.pool_of[i] == pool}
            )
            # the pool's busy time: the window, and its drain if it ran behind
            busy_end = max(end, row["last_finished"] or end)
            row["resources"] = pool_resources(broker, pool, published.start, busy_end)
            rows.append(row)
    finally:
        results.close()
        broker.close()
        app.close()
    report = build_report(spec, published, rows, settings)
    (out / FILES[0]).write_text(json.dumps(_clean(report), indent=2) + "\n")
    (out / FILES[1]).write_text(markdown(report))
    write_chart(report, out / FILES[2])
    print_table(report)
    for note in report["notes"]:
        print(f"note: {note}")
    print(f"results in {out}/ ({', '.join(FILES)})")
    failed = sum(row["failed"] for row in rows)
    if failed:
        print(f"{failed} jobs failed", file=sys.stderr)
    return 1 if failed else 0


def build_report(
    spec: CompareSpec, published: Published, rows: list[dict[str, Any]], settings: Settings
) -> dict[str, Any]:
    lags = sorted(published.lags_s)
    notes = []
    if published.stopped:
        notes.append(published.stopped)
    lag_p99 = percentile(lags, 99) if lags else math.nan
    if lags and lag_p99 > 0.05:
        notes.append(
            f"the publisher was up to {lags[-1] * 1000:.0f} ms late (p99 {lag_p99 * 1000:.0f} "
            "ms): the machine was busy; each job's latency counts from its real send"
        )
    for row in rows:
        if not row["resources"]["nodes"]:
            notes.append(
                f"{row['pool']}: no resource samples in poollab:samples:{row['pool']} (does "
                "its consumer write them?): memory and CPU left blank"
            )
        if row["unfinished"]:
            notes.append(
                f"{row['pool']}: {row['unfinished']} jobs had no result {spec.drain_s:g} s "
                f"after the last send; {row['withdrawn']} of them were still queued and were "
                "taken off the queue, the rest were running, prefetched or lost. Its latency "
                "percentiles count them at the time they had waited: lower bounds (≥)"
            )
    return {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(published.start)),
        "model": "open: a fixed schedule, the same rate for every pool, whatever completes",
        "broker": urlparse(settings.broker_url).netloc,
        "pools": list(spec.pools),
        "kinds": list(spec.kinds),
        "params": spec.params,
        "offered_per_s_per_pool": spec.rate,
        "duration_s": spec.duration_s,
        "drain_s": spec.drain_s,
        "planned_jobs": spec.total,
        "sent_jobs": len(published.pool_of),
        "publisher": {
            "lag_ms_p50": round(statistics.median(lags) * 1000, 2) if lags else None,
            "lag_ms_p99": round(lag_p99 * 1000, 2) if lags else None,
            "lag_ms_max": round(lags[-1] * 1000, 2) if lags else None,
            "stopped": published.stopped,
        },
        "definitions": {
            "achieved_per_s": "jobs finished inside the sending window ÷ its length",
            "latency_ms": "end to end, finished − sent, from each job's result envelope",
            "queued_at_end": "sent and not started when the window ended",
            "unfinished": "no result when the wait after the last send ran out",
            "withdrawn": "unfinished jobs still queued, taken off the queue at the end",
            "latency_lower_bound": "unfinished jobs counted at the time they had waited, "
            "so the percentiles are lower bounds",
            "resources": "each consumer's process tree, from its samples over the window "
            "(and the drain, if the pool ran behind), added up over the pool's consumers",
        },
        "rows": rows,
        "notes": notes,
    }


def _num(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _pair(figures: dict[str, Any], digits: int = 0) -> str:
    if not figures:
        return "–"
    return f"{_num(figures.get('peak'), digits)} / {_num(figures.get('mean'), digits)}"


COLUMNS = (
    "pool", "offered/s", "sent", "achieved/s", "done", "queued at end", "unfinished",
    "p50 ms", "p95 ms", "p99 ms", "USS MB peak / mean", "RSS MB peak / mean", "CPU cores",
)  # fmt: skip


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    lines = []
    for row in report["rows"]:
        latency, res = row["latency_ms"], row["resources"]
        bound = "≥" if row.get("latency_lower_bound") else ""
        lines.append(
            [
                row["pool"], _num(row["offered_per_s"], 1), _num(row["sent"]),
                _num(row["achieved_per_s"], 1), _num(row["completed"]),
                _num(row["queued_at_end"]), _num(row["unfinished"]),
                *(bound + _num(latency.get(f"p{q}"), 1) for q in (50, 95, 99)),
                _pair(res["uss_mb"]), _pair(res["rss_mb"]), _num(res["cpu_cores"], 2),
            ]
        )  # fmt: skip
    return lines


def markdown(report: dict[str, Any]) -> str:
    kinds = ", ".join(report["kinds"])
    lines = [
        "# Load compare: the same offered rate for every pool",
        "",
        f"{report['offered_per_s_per_pool']:g} jobs/s offered to each pool for "
        f"{report['duration_s']:g} s on a fixed schedule (an open model: jobs go out on time "
        f"whatever has completed), kinds {kinds} in turn; {report['sent_jobs']} of "
        f"{report['planned_jobs']} jobs sent. Achieved: jobs finished inside the sending "
        "window ÷ its length. Latency: end to end (finished − sent) from each job's result. "
        "Queued at end: sent and not started when the window ended. Unfinished: no result "
        f"{report['drain_s']:g} s after the last send. Memory and CPU: the pool's consumers' "
        "process trees, from their samples over the window.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "| --- | " + " | ".join("---:" for _ in COLUMNS[1:]) + " |",
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(report)]
    if len(report["kinds"]) > 1:
        lines += ["", "## Latency by kind (p50 / p95 / p99 ms)", ""]
        lines.append("| pool | " + " | ".join(report["kinds"]) + " |")
        lines.append("| --- | " + " | ".join("---:" for _ in report["kinds"]) + " |")
        for row in report["rows"]:
            cells = []
            for kind in report["kinds"]:
                lat = row["kinds"][kind]["latency_ms"]
                cells.append(" / ".join(_num(lat.get(f"p{q}"), 1) for q in (50, 95, 99)))
            lines.append(f"| {row['pool']} | " + " | ".join(cells) + " |")
    if report["notes"]:
        lines += ["", *(f"- {note}" for note in report["notes"])]
    lines += ["", f"Chart: {FILES[2]}; every figure: {FILES[0]}.", ""]
    return "\n".join(lines)


def print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"Pool Lab load compare: {report['offered_per_s_per_pool']:g} jobs/s offered "
        f"to each pool for {report['duration_s']:g} s (open model)"
    )
    for index, title in enumerate(COLUMNS):
        table.add_column(title, justify="left" if index == 0 else "right", no_wrap=index == 0)
    for cells in table_rows(report):
        table.add_row(*cells)
    console = Console()
    if not console.is_terminal:
        console = Console(width=150)
    console.print(table)


def write_chart(report: dict[str, Any], path: Path) -> None:
    """Four panels, a bar group per pool: rates, latency, memory, CPU."""
    from matplotlib.figure import Figure

    rows = report["rows"]
    pools = [row["pool"] for row in rows]
    colors = [POOL_COLORS.get(pool, OTHER_COLOR) for pool in pools]
    xs = list(range(len(pools)))
    fig = Figure(figsize=(11, 7.5), layout="constrained")
    axes = [fig.add_subplot(2, 2, i + 1) for i in range(4)]

    def val(value: Any) -> float:
        return float(value) if isinstance(value, int | float) and math.isfinite(value) else 0.0

    def grouped(ax: Any, series: list[tuple[str, list[float], float]], unit: str) -> None:
        width = 0.8 / len(series)
        for n, (name, values, alpha) in enumerate(series):
            offsets = [x - 0.4 + width * (n + 0.5) for x in xs]
            bars = ax.bar(offsets, values, width, color=colors, alpha=alpha, label=name)
            ax.bar_label(bars, labels=[f"{v:,.3g}" for v in values], fontsize=7)
        ax.set_xticks(xs, labels=pools)
        ax.set_ylabel(unit)
        ax.grid(True, axis="y", alpha=0.3)

    rate_ax, lat_ax, mem_ax, cpu_ax = axes
    offered = [val(r["offered_per_s"]) for r in rows]
    grouped(rate_ax, [("achieved", [val(r["achieved_per_s"]) for r in rows], 0.9)], "jobs/s")
    rate_ax.hlines(offered, [x - 0.45 for x in xs], [x + 0.45 for x in xs], colors="black",
                   linestyles="dashed", label="offered")  # fmt: skip
    rate_ax.set_title("achieved vs offered (dashed)")
    grouped(
        lat_ax,
        [(f"p{q}", [val(r["latency_ms"].get(f"p{q}")) for r in rows], a)
         for q, a in ((50, 0.45), (95, 0.7), (99, 1.0))],
        "ms",
    )  # fmt: skip
    lat_ax.set_title("end-to-end latency p50 / p95 / p99")
    grouped(
        mem_ax,
        [
            ("USS peak", [val(r["resources"]["uss_mb"].get("peak")) for r in rows], 1.0),
            ("USS mean", [val(r["resources"]["uss_mb"].get("mean")) for r in rows], 0.6),
            ("RSS peak", [val(r["resources"]["rss_mb"].get("peak")) for r in rows], 0.3),
        ],
        "MB",
    )
    mem_ax.set_title("memory of the consumers' process trees: USS peak, mean; RSS peak")
    grouped(cpu_ax, [("cores", [val(r["resources"]["cpu_cores"]) for r in rows], 0.9)], "cores")
    cpu_ax.set_title("CPU cores used")
    fig.suptitle(
        f"{report['offered_per_s_per_pool']:g} jobs/s offered to each pool for "
        f"{report['duration_s']:g} s ({', '.join(report['kinds'])})",
        fontsize=11,
    )
    fig.savefig(path, dpi=90)
