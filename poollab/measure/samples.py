"""Reading samples back and turning a time window of them into a cell's resource figures."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from poollab.hooks.sampler import FIELD, Sample, stream_key

MB = 2**20


def read_samples(
    client: redis.Redis, pool: str, start: float, end: float, node: str | None = None
) -> list[Sample]:
    """Samples of a pool's stream taken between ``start`` and ``end`` (epoch seconds).

    The stream's entry ids are Redis's clock in ms (same machine), so the range query reads
    only the window, with a second of slack each side; the filter is on the sample's own time.
    """
    low = max(int((start - 1.0) * 1000), 0)
    high = int((end + 1.0) * 1000)
    entries = client.xrange(stream_key(pool), min=low, max=high) or []
    found = []
    for _entry_id, fields in entries:
        raw = (fields or {}).get(FIELD.encode())
        if raw is None:
            continue
        sample = Sample.from_json(raw)
        if start <= sample.t <= end and (node is None or sample.node == node):
            found.append(sample)
    return found


@dataclass(frozen=True)
class Resources:
    rss_mb: dict[str, float]
    uss_mb: dict[str, float]
    pss_mb: dict[str, float]
    cpu_cores: float
    samples: int
    procs: int

    @classmethod
    def empty(cls) -> Resources:
        nan = math.nan
        blank = {"idle": nan, "peak": nan, "mean": nan}
        return cls(dict(blank), dict(blank), dict(blank), nan, 0, 0)


def _mb(values: Sequence[int]) -> dict[str, float]:
    return {
        "peak": round(max(values) / MB, 2),
        "mean": round(statistics.fmean(values) / MB, 2),
    }


def summarize_window(
    idle: Sequence[Sample], samples: Sequence[Sample], start: float, end: float
) -> Resources:
    """A window's figures from the samples around it (ordered by time).

    Memory: idle is the consumer before its first job; peak and mean come from the samples
    inside the window and the first one after it. CPU: the tree's CPU seconds between the
    last sample before the window and the first after it, over the wall time between them
    (cumulative counters, so a late sample loses nothing); pass samples from a little
    before ``start`` to a little after ``end`` so that they bracket it.
    """
    inside = [s for s in samples if start <= s.t <= end]
    after = [s for s in samples if s.t > end]
    busy = inside + after[:1]
    if not busy:
        return Resources.empty()
    figures = {}
    for name in ("rss", "uss", "pss"):
        found = _mb([getattr(s, name) for s in busy])
        idle_mean = statistics.fmean(getattr(s, name) for s in idle) if idle else math.nan
        found["idle"] = round(idle_mean / MB, 2)
        figures[name] = {k: found[k] for k in ("idle", "peak", "mean")}
    before = [s for s in samples if s.t < start and s.pid == busy[0].pid]
    first = before[-1] if before else busy[0]
    last = after[0] if after else busy[-1]
    if last.t > first.t and last.pid == first.pid:
        cores = round(max(last.cpu_s - first.cpu_s, 0.0) / (last.t - first.t), 3)
    else:
        known = [s.cpu_cores for s in busy if s.cpu_cores is not None]
        cores = round(statistics.fmean(known), 3) if known else math.nan
    return Resources(
        rss_mb=figures["rss"],
        uss_mb=figures["uss"],
        pss_mb=figures["pss"],
        cpu_cores=cores,
        samples=len(busy),
        procs=max(s.procs for s in busy),
    )
