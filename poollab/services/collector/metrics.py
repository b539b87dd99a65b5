"""The Prometheus metrics the collector serves, fed from job results and resource samples.

Each collector owns its registry (tests run several side by side). Jobs completed and the
latency histograms come from the results (Celery's result carries our envelope: pool and
timings); jobs failed come from the consumers' own counters inside their samples, because
a failed job's result is Celery's exception record, which does not say which pool ran it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from poollab.hooks.sampler import Sample
from poollab.services.collector.queues import UNACKED_SCAN_COUNT, QueueStats

LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0,
)  # fmt: skip
# a node that has not sampled for this long is dropped from the gauges
STALE_AFTER_S = 30.0


@dataclass
class _NodeState:
    pool: str
    last_seen: float
    pid: int
    succeeded: int | None
    failed: int | None


class CollectorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.completed = Counter(
            "poollab_jobs_completed", "Jobs that succeeded (seen in the results).", ["pool"],
            registry=r,
        )  # fmt: skip
        self.failed = Counter(
            "poollab_jobs_failed", "Jobs that failed (counted by the consumers).", ["pool"],
            registry=r,
        )  # fmt: skip
        self.failed_results = Counter(
            "poollab_results_failed",
            "Failure results seen (Celery's failure record does not name the pool).",
            registry=r,
        )
        self.latency = Histogram(
            "poollab_job_latency_seconds", "End to end: finished − sent.", ["pool"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_wait = Histogram(
            "poollab_job_queue_wait_seconds", "Queue wait: started − sent.", ["pool"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.run_time = Histogram(
            "poollab_job_run_seconds", "Run time: finished − started.", ["pool"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        node = ["pool", "node"]
        self.rss = Gauge(
            "poollab_consumer_rss_bytes", "RSS of the consumer's whole process tree.", node,
            registry=r,
        )  # fmt: skip
        self.uss = Gauge(
            "poollab_consumer_uss_bytes", "USS of the consumer's whole process tree.", node,
            registry=r,
        )  # fmt: skip
        self.pss = Gauge(
            "poollab_consumer_pss_bytes", "PSS of the consumer's whole process tree.", node,
            registry=r,
        )  # fmt: skip
        self.cpu = Gauge(
            "poollab_consumer_cpu_cores", "Cores the tree used since its previous sample.",
            node, registry=r,
        )  # fmt: skip
        self.cpu_seconds = Gauge(
            "poollab_consumer_cpu_seconds",
            "CPU seconds the tree used since it started (resets when the consumer restarts).",
            node, registry=r,
        )  # fmt: skip
        self.procs = Gauge(
            "poollab_consumer_processes", "Processes in the consumer's tree.", node, registry=r
        )
        self.loop_lag = Gauge(
            "poollab_event_loop_lag_seconds",
            "Largest lateness of the consumer's event loop waking from a 100 ms sleep since "
            "its previous sample: how long a job blocked the loop (consumers with an event "
            "loop of their own: the asyncio consumer).",
            node, registry=r,
        )  # fmt: skip
        self.sampled_at = Gauge(
            "poollab_consumer_sample_timestamp_seconds", "When the last sample was taken.",
            node, registry=r,
        )  # fmt: skip
        self.queue_jobs = Gauge(
            "poollab_queue_jobs",
            "Messages waiting on the pool's queue (every priority sub-list), polled each second.",
            ["pool"], registry=r,
        )  # fmt: skip
        self.queue_oldest_age = Gauge(
            "poollab_queue_oldest_job_age_seconds",
            "Now − sent of the longest waiting message on the pool's queue (0 when empty; "
            "for a message without a send stamp, how long the collector has seen it waiting).",
            ["pool"], registry=r,
        )  # fmt: skip
        self.queue_unacked = Gauge(
            "poollab_queue_unacked_jobs",
            "Messages delivered to the pool's consumers and not yet acknowledged (kombu's "
            f"unacked hash, scanned at most {UNACKED_SCAN_COUNT} entries per poll: a larger "
            "hash is counted over several polls).",
            ["pool"], registry=r,
        )  # fmt: skip
        self.nodes: dict[str, _NodeState] = {}

    def observe_result(self, meta: dict[str, Any]) -> dict[str, Any] | None:
        """Count one published result; return the job's timings row for the raw data."""
        status = meta.get("status")
        result = meta.get("result")
        if status == "FAILURE":
            self.failed_results.inc()
            return {"id": meta.get("task_id"), "status": status}
        if status != "SUCCESS" or not isinstance(result, dict) or "timings" not in result:
            return None
        pool = str(result.get("pool") or "unknown")
        timings = result["timings"]
        sent, started, finished = (
            timings.get("sent"),
            timings.get("started"),
            timings.get("finished"),
        )
        self.completed.labels(pool).inc()
        if isinstance(started, int | float) and isinstance(finished, int | float):
            self.run_time.labels(pool).observe(max(finished - started, 0.0))
            if isinstance(sent, int | float):
                self.latency.labels(pool).observe(max(finished - sent, 0.0))
                self.queue_wait.labels(pool).observe(max(started - sent, 0.0))
        return {
            "id": meta.get("task_id"),
            "status": status,
            "pool": pool,
            "pid": result.get("pid"),
            "sent": sent,
            "started": started,
            "finished": finished,
        }

    def observe_queues(self, stats: Mapping[str, QueueStats]) -> None:
        for pool, figures in stats.items():
            self.queue_jobs.labels(pool).set(figures.jobs)
            self.queue_oldest_age.labels(pool).set(figures.oldest_age_s)
            if figures.unacked is not None:
                self.queue_unacked.labels(pool).set(figures.unacked)

    def failed_total(self, pool: str) -> float | None:
        """Jobs failed in ``pool`` so far, or None while no consumer of it has counted."""
        return self.registry.get_sample_value("poollab_jobs_failed_total", {"pool": pool})

    def observe_sample(self, sample: Sample) -> None:
        labels = (sample.pool, sample.node)
        self.rss.labels(*labels).set(sample.rss)
        self.uss.labels(*labels).set(sample.uss)
        self.pss.labels(*labels).set(sample.pss)
        self.cpu_seconds.labels(*labels).set(sample.cpu_s)
        self.procs.labels(*labels).set(sample.procs)
        self.sampled_at.labels(*labels).set(sample.t)
        if sample.cpu_cores is not None:
            self.cpu.labels(*labels).set(sample.cpu_cores)
        if sample.loop_lag_s is not None:
            self.loop_lag.labels(*labels).set(sample.loop_lag_s)
        self._count_failures(sample)

    def _count_failures(self, sample: Sample) -> None:
        """Turn a consumer's running count into counter increments (restarts start at 0)."""
        state = self.nodes.get(sample.node)
        if sample.failed is not None:
            previous = state.failed if state and state.pid == sample.pid else 0
            if previous is not None and sample.failed > previous:
                self.failed.labels(sample.pool).inc(sample.failed - previous)
            else:
                # make the pool's series exist (at 0) as soon as its consumer counts
                self.failed.labels(sample.pool)
        self.nodes[sample.node] = _NodeState(
            sample.pool, sample.t, sample.pid, sample.succeeded, sample.failed
        )

    def forget_stale(self, now: float | None = None) -> list[str]:
        """Drop the gauges of consumers that stopped sampling; return their node names."""
        now = time.time() if now is None else now
        gone = [n for n, s in self.nodes.items() if now - s.last_seen > STALE_AFTER_S]
        for node in gone:
            state = self.nodes.pop(node)
            gauges = (self.rss, self.uss, self.pss, self.cpu, self.cpu_seconds, self.procs,
                      self.loop_lag, self.sampled_at)  # fmt: skip
            for gauge in gauges:
                with contextlib.suppress(KeyError):
                    gauge.remove(state.pool, node)
        return gone
