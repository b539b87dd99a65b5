"""From per-job timings to the figures the lab reports.

Each job carries three stamps: ``sent`` (the producer, into the message headers),
``started`` and ``finished`` (whatever ran it). From them:
throughput = completed / (last finish − first send); queue wait = started − sent;
run time = finished − started; end-to-end latency = finished − sent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100); NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True)
class JobTiming:
    sent: float | None
    started: float
    finished: float
    pool: str = ""
    pid: int = 0

    @classmethod
    def from_envelope(cls, envelope: Mapping[str, Any]) -> JobTiming:
        timings = envelope["timings"]
        return cls(
            sent=timings.get("sent"),
            started=timings["started"],
            finished=timings["finished"],
            pool=str(envelope.get("pool", "")),
            pid=int(envelope.get("pid", 0)),
        )


@dataclass
class Summary:
    jobs: int
    completed: int
    failed: int
    duration_s: float
    throughput_per_s: float
    latency_ms: dict[str, float] = field(default_factory=dict)
    queue_wait_ms: dict[str, float] = field(default_factory=dict)
    run_ms: dict[str, float] = field(default_factory=dict)
    pids: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ms_percentiles(values: Iterable[float], with_max: bool) -> dict[str, float]:
    ordered = sorted(v * 1000 for v in values)
    figures = {f"p{q}": round(percentile(ordered, q), 3) for q in (50, 95, 99)}
    if with_max:
        figures["max"] = round(ordered[-1], 3) if ordered else math.nan
    return figures


def summarize(
    timings: Sequence[JobTiming], jobs: int, failed: int, first_sent: float | None = None
) -> Summary:
    """Figures for one batch: ``timings`` of the completed jobs, ``failed`` counted apart."""
    if not timings:
        return Summary(jobs, 0, failed, 0.0, 0.0)
    sent_times = [t.sent for t in timings if t.sent is not None]
    start = (
        first_sent if first_sent is not None else min(sent_times or [t.started for t in timings])
    )
    end = max(t.finished for t in timings)
    duration = max(end - start, 1e-9)
    return Summary(
        jobs=jobs,
        completed=len(timings),
        failed=failed,
        duration_s=round(duration, 6),
        throughput_per_s=round(len(timings) / duration, 3),
        latency_ms=_ms_percentiles(
            (t.finished - t.sent for t in timings if t.sent is not None), with_max=True
        ),
        queue_wait_ms=_ms_percentiles(
            (t.started - t.sent for t in timings if t.sent is not None), with_max=False
        ),
        run_ms=_ms_percentiles((t.finished - t.started for t in timings), with_max=False),
        pids=len({t.pid for t in timings}),
    )
