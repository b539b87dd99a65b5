"""How long a cell ran at full parallelism, and how many jobs it needs to run long enough.

A cell's rate means something only once every slot has a job: before that the consumer ramps
up (its first c jobs start one by one), after the last start it ramps down (slots empty one
by one). The **steady state** is the time between the two: from the c-th job's start (or the
last one's, with fewer jobs than slots) to the last job's start. A quick cpu cell of 150 jobs
that lasted 0.8 s in all may hold well under that of steady state; such a cell is run again
with more jobs (bounded: ``jobs_for_steady``), and flagged ``short`` if it still falls short.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# more jobs than the steady-state share asks for, so that one extension usually suffices
EXTEND_MARGIN = 1.2


def steady_state_s(starts: Sequence[float], concurrency: int) -> float:
    """Seconds from the c-th start to the last start; NaN without jobs."""
    if not starts:
        return math.nan
    ordered = sorted(starts)
    full = ordered[min(max(concurrency, 1), len(ordered)) - 1]
    return round(ordered[-1] - full, 4)


def short_note(steady_s: float, cell_s: float) -> str | None:
    """The cell's ``short`` figure: None when its steady state lasted ``cell_s`` (or unknown)."""
    if not (math.isfinite(cell_s) and math.isfinite(steady_s)) or steady_s >= cell_s:
        return None
    return f"steady state {steady_s:.2f} s < cell_s {cell_s:g} s"


def jobs_for_steady(
    jobs: int, duration_s: float, steady_s: float, cell_s: float, max_jobs: int
) -> int | None:
    """Jobs for a steady state of ``cell_s``, or None when it had that (or cannot grow).

    The ramps (duration − steady state) take about as long with more jobs, so only the steady
    part is scaled: at the cell's own rate, (cell_s + ramps) × jobs / duration, with a margin.
    """
    if not (math.isfinite(steady_s) and duration_s > 0) or steady_s >= cell_s:
        return None
    if jobs >= max_jobs:
        return None
    ramps = max(duration_s - steady_s, 0.0)
    wanted = math.ceil(jobs / duration_s * (cell_s + ramps) * EXTEND_MARGIN)
    return min(max(wanted, jobs + 1), max_jobs)
