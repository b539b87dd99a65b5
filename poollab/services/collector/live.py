"""The live comparison's figures: recent windows per pool, kept in the collector's memory.

Prometheus histograms answer "how was it over the last minutes" only through a query
server; the page at ``GET /`` needs "how is it now" from the collector alone. So each
pool keeps ring buffers: the latencies of its recent jobs, the latest sample of each of
its consumers, and one history point per tick (completed count, jobs/s, USS) for the
charts. Memory is bounded whatever the job rate: :data:`LATENCY_KEEP` latencies and
:data:`HISTORY_S` ticks per pool.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from poollab.hooks.sampler import Sample
from poollab.services.collector.queues import QueueStats
from poollab.settings import ALL_POOLS
from poollab.timings import percentile

# jobs/s is the completed count's growth over this many seconds
RATE_WINDOW_S = 5.0
# p50 and p95 are over the jobs completed in this many seconds
LATENCY_WINDOW_S = 10.0
# the charts' span, at one point per tick
TICK_S = 1.0
HISTORY_S = 300
# at most this many latencies per pool (at a higher rate the window is shorter)
LATENCY_KEEP = 50_000
# a consumer writes a sample at least once a second; silent this long, it is gone
NODE_STALE_S = 5.0
# queue figures older than this (Redis unreachable) are shown as unknown
QUEUE_STALE_S = 5.0


def rate_over(
    points: Sequence[tuple[float, int]], now: float, count_now: int, window_s: float
) -> float | None:
    """Growth per second of a running count over about ``window_s`` seconds before ``now``.

    ``points`` are earlier (time, count) readings, oldest first. The base is the newest
    reading at least ``window_s`` old, else the oldest there is (just after start); None
    when there is no reading at least a tenth of the window old to measure against.
    """
    base: tuple[float, int] | None = None
    for t, count in points:
        if t <= now - window_s or base is None:
            base = (t, count)
        else:
            break
    if base is None or now - base[0] < window_s / 10:
        return None
    return max(count_now - base[1], 0) / (now - base[0])


def recent_percentiles(
    latencies: deque[tuple[float, float]], now: float, window_s: float
) -> tuple[float | None, float | None, int]:
    """p50, p95 and count of the latencies seen in the last ``window_s`` seconds.

    Drops older entries from the deque (they are in arrival order) as a side effect.
    """
    while latencies and latencies[0][0] < now - window_s:
        latencies.popleft()
    ordered = sorted(value for _, value in latencies)
    if not ordered:
        return None, None, 0
    return percentile(ordered, 50), percentile(ordered, 95), len(ordered)


def _sum_known(values: Iterable[float | int | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _max_known(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


@dataclass
class _Node:
    received: float
    sample: Sample


@dataclass
class PoolWindow:
    completed: int = 0
    latencies: deque[tuple[float, float]] = field(
        default_factory=lambda: deque(maxlen=LATENCY_KEEP)
    )
    # (tick time, completed count then): what jobs/s is measured against
    counts: deque[tuple[float, int]] = field(
        default_factory=lambda: deque(maxlen=int(HISTORY_S / TICK_S) + 1)
    )
    nodes: dict[str, _Node] = field(default_factory=dict)
    queues: QueueStats | None = None
    queues_at: float = 0.0


class LiveView:
    def __init__(
        self, pools: Sequence[str] = ALL_POOLS, clock: Callable[[], float] = time.time
    ) -> None:
        self.pools = tuple(pools)
        self.clock = clock
        self.windows = {pool: PoolWindow() for pool in self.pools}
        self.history_t: deque[float] = deque(maxlen=int(HISTORY_S / TICK_S))
        self.history: dict[str, dict[str, deque[float | None]]] = {
            pool: {
                "jobs_per_s": deque(maxlen=int(HISTORY_S / TICK_S)),
                "uss_bytes": deque(maxlen=int(HISTORY_S / TICK_S)),
            }
            for pool in self.pools
        }

    def observe_job(self, row: Mapping[str, Any]) -> None:
        """One completed job's row (see ``CollectorMetrics.observe_result``)."""
        window = self.windows.get(str(row.get("pool")))
        if window is None or row.get("status") != "SUCCESS":
            return
        window.completed += 1
        sent, finished = row.get("sent"), row.get("finished")
        if isinstance(sent, int | float) and isinstance(finished, int | float):
            window.latencies.append((self.clock(), max(finished - sent, 0.0)))

    def observe_sample(self, sample: Sample) -> None:
        window = self.windows.get(sample.pool)
        if window is not None:
            window.nodes[sample.node] = _Node(self.clock(), sample)

    def observe_queues(self, stats: Mapping[str, QueueStats]) -> None:
        now = self.clock()
        for pool, figures in stats.items():
            if (window := self.windows.get(pool)) is not None:
                window.queues, window.queues_at = figures, now

    def tick(self) -> None:
        """One history point per pool; call every :data:`TICK_S` seconds."""
        now = self.clock()
        self.history_t.append(round(now, 3))
        for pool, window in self.windows.items():
            jobs_per_s = rate_over(window.counts, now, window.completed, RATE_WINDOW_S)
            window.counts.append((now, window.completed))
            uss = _sum_known(n.sample.uss for n in self._fresh_nodes(window, now))
            self.history[pool]["jobs_per_s"].append(
                None if jobs_per_s is None else round(jobs_per_s, 3)
            )
            self.history[pool]["uss_bytes"].append(uss)

    def _fresh_nodes(self, window: PoolWindow, now: float) -> list[_Node]:
        for name in [n for n, node in window.nodes.items() if now - node.received > NODE_STALE_S]:
            del window.nodes[name]
        return list(window.nodes.values())

    def pool_figures(self, pool: str, failed: float | None) -> dict[str, Any]:
        now = self.clock()
        window = self.windows[pool]
        nodes = self._fresh_nodes(window, now)
        samples = [node.sample for node in nodes]
        jobs_per_s = rate_over(window.counts, now, window.completed, RATE_WINDOW_S)
        p50, p95, recent = recent_percentiles(window.latencies, now, LATENCY_WINDOW_S)
        queues = window.queues if now - window.queues_at <= QUEUE_STALE_S else None
        slots = [getattr(s, "concurrency", None) for s in samples]
        concurrency = sum(s for s in slots if s) if slots and all(slots) else None
        rss = _sum_known(s.rss for s in samples)
        uss = _sum_known(s.uss for s in samples)
        pss = _sum_known(s.pss or None for s in samples)
        started = [getattr(s, "started", None) for s in samples]
        finished = [(s.succeeded, s.failed) for s in samples]
        running = None
        if (
            samples
            and all(v is not None for v in started)
            and all(ok is not None and bad is not None for ok, bad in finished)
        ):
            running = sum(
                max(int(st or 0) - int(ok or 0) - int(bad or 0), 0)
                for st, (ok, bad) in zip(started, finished, strict=True)
            )
        return {
            "nodes": len(samples),
            "concurrency": concurrency,
            "jobs_per_s": _rounded(jobs_per_s, 3),
            "completed": window.completed,
            "failed": None if failed is None else int(failed),
            "running": running,
            "latency_p50_s": _rounded(p50, 4),
            "latency_p95_s": _rounded(p95, 4),
            "latency_jobs": recent,
            "queue_jobs": None if queues is None else queues.jobs,
            "queue_oldest_age_s": None if queues is None else queues.oldest_age_s,
            "unacked": None if queues is None else queues.unacked,
            "rss_bytes": rss,
            "pss_bytes": pss,
            "uss_bytes": uss,
            "rss_per_slot_bytes": _per(rss, concurrency),
            "uss_per_slot_bytes": _per(uss, concurrency),
            "cpu_cores": _rounded(_sum_known(s.cpu_cores for s in samples), 3),
            # the worst consumer's: one blocked loop is what a pool's jobs wait behind
            "loop_lag_s": _rounded(_max_known(s.loop_lag_s for s in samples), 4),
            "processes": _sum_known(s.procs for s in samples),
            "sampled_at": max((s.t for s in samples), default=None),
        }

    def snapshot(self, failed: Mapping[str, float | None] | None = None) -> dict[str, Any]:
        """What ``GET /api/pools`` answers: every pool, null where a figure is unknown."""
        failed = failed or {}
        return {
            "t": round(self.clock(), 3),
            "windows": {
                "jobs_per_s_s": RATE_WINDOW_S,
                "latency_s": LATENCY_WINDOW_S,
                "history_s": HISTORY_S,
                "tick_s": TICK_S,
            },
            "pools": {pool: self.pool_figures(pool, failed.get(pool)) for pool in self.pools},
            "history": {
                "t": list(self.history_t),
                "pools": {
                    pool: {name: list(values) for name, values in series.items()}
                    for pool, series in self.history.items()
                },
            },
        }


def _rounded(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def _per(total: float | None, slots: int | None) -> float | None:
    return None if total is None or not slots else round(total / slots)
