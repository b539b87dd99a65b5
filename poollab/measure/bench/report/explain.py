"""Where a cell's CPU went, from the per-process figures: notes the verdict adds when they
explain a rate (a consumer's own path costing a large share of the job, or processes that
did not get the cores they were counted on for)."""

from __future__ import annotations

import math

from poollab.measure.bench.ceilings import References
from poollab.measure.bench.report.models import cores_usable
from poollab.measure.bench.results import BenchCell

# a consumer's CPU per job beyond the body, as a share of the body, worth a note
NOTE_SHARE = 0.25
# below this much CPU per job of its own, a body's share means little (noop, io): the
# pathology flag's "overhead" cause speaks for those
MIN_BODY_MS = 1.0
# what prefork on 2 cores is expected to reach against solo at the least
PARALLEL_X_SOLO = 1.5


def _per_job(cell: BenchCell) -> tuple[float, float] | None:
    split = cell.cpu_ms_per_job
    if not (math.isfinite(split.main_ms) and math.isfinite(split.children_ms)):
        return None
    return split.main_ms, split.children_ms


def cpu_note(cell: BenchCell, refs: References, solo: BenchCell | None) -> str | None:
    """One sentence when the consumer's own path costs a large share of the job's CPU."""
    figures = _per_job(cell)
    body = refs.body_cpu_s(cell.workload, cell.pool) * 1000
    if figures is None or not (math.isfinite(body) and body >= MIN_BODY_MS):
        return None
    main, children = figures
    total = main + children
    if cell.cpu_ms_per_job.children and children > 0:
        if main < NOTE_SHARE * body:
            return None
        cores = cores_usable(cell, refs)
        return (
            f"{cell.label}: its main process spent {main:.2f} ms of CPU per job taking jobs, "
            f"handing them to its children and back ({main / body:.0%} of the job's own "
            f"{body:.2f} ms), the children {children:.2f} ms per job. Both compete for the "
            f"machine's {refs.cores} cores: {total:.2f} ms of CPU per job allow at most "
            f"{refs.cores / total * 1000:,.0f} jobs/s, where the {_cores(cores)} bound "
            f"alone says {cores / body * 1000:,.0f}."
        )
    extra = main - body
    if extra < NOTE_SHARE * body:
        return None
    against = ""
    solo_figures = _per_job(solo) if solo is not None and solo is not cell else None
    if solo_figures is not None:
        more = main - solo_figures[0]
        # what this pool adds to the same path run on one thread (threads: the GIL passed
        # between its threads; gevent: the hub), when it adds anything worth a word
        if more >= NOTE_SHARE / 2 * body:
            against = f", {more:.2f} ms more than solo's {solo_figures[0]:.2f} ms"
        else:
            against = f", as much as solo's {solo_figures[0]:.2f} ms"
    return (
        f"{cell.label}: {main:.2f} ms of CPU per job in its one process for a body of "
        f"{body:.2f} ms: {extra:.2f} ms per job ({extra / body:.0%} of the body) went to the "
        f"consumer's own path{against}, so its one core allows at most {1000 / main:,.0f} "
        "jobs/s."
    )


def _cores(k: int) -> str:
    return "one-core" if k == 1 else f"{k}-core"


def cpu_notes(chosen: list[BenchCell], refs: References, solo: BenchCell | None) -> list[str]:
    notes = [cpu_note(c, refs, solo) for c in chosen]
    return [n for n in notes if n]


def why_not_parallel(
    chosen: list[BenchCell], solo: BenchCell, refs: References, busy_cores: float
) -> list[str]:
    """For each multi-core configuration below 1.5× solo: why, from the measured figures.

    The cores left to the consumer are the machine's minus what other programs used over
    the cell; the CPU it needs per job is its main process's and its children's.
    """
    lines = []
    for cell in chosen:
        cores = cores_usable(cell, refs)
        if cores < 2 or solo.throughput_per_s <= 0:
            continue
        x = cell.throughput_per_s / solo.throughput_per_s
        if x >= PARALLEL_X_SOLO:
            continue
        other = cell.contention.other_cores
        free = max(refs.cores - other, 0.0)
        reasons = [
            f"other programs used {other:.2f} of the {refs.cores} cores during its cell "
            f"({solo.contention.other_cores:.2f} during solo's)"
        ]
        figures = _per_job(cell)
        allowed = math.nan
        if figures is not None and sum(figures) > 0:
            main, children = figures
            total = main + children
            allowed = free / total * 1000
            reasons.append(
                f"it needed {total:.2f} ms of CPU per job (main process {main:.2f}, children "
                f"{children:.2f}), so the {free:.2f} cores left allowed at most "
                f"{allowed:,.0f} jobs/s, {allowed / solo.throughput_per_s:.2f}× solo"
            )
        if other > busy_cores:
            verdict = "the machine, not the pool, held it back"
        elif allowed < PARALLEL_X_SOLO * solo.throughput_per_s:
            verdict = "its own CPU per job held it back"
        else:
            verdict = "neither figure explains it all"
        lines.append(
            f"{cell.label} ({cores} cores for its CPU work) did {x:.2f}× solo, below the "
            f"{PARALLEL_X_SOLO}× two cores should give: {'; '.join(reasons)}: {verdict}."
        )
    return lines
