"""Plain-language verdicts: what each workload's numbers say, and which pool to pick."""

from __future__ import annotations

import math

from poollab.measure.bench.ceilings import PATHOLOGY_EFFICIENCY, References
from poollab.measure.bench.report.select import (
    best,
    best_per_pool,
    cells,
    main_mode,
    main_profile,
)
from poollab.measure.bench.results import BenchCell, BenchRun

# a pool within this share of the fastest counts as "as fast" when recommending by memory
CLOSE_ENOUGH = 0.9
# pools whose Celery (or event-loop) work runs on one thread: one core at most
ONE_THREAD_POOLS = frozenset({"solo", "threads", "gevent", "asyncio"})
SATURATED_CORES = 0.85


def describe_workload(workload: str, params: dict[str, int], refs: References) -> str:
    if workload == "noop":
        return "noop jobs (the cost of the path itself)"
    if workload == "sleep":
        return f"sleep jobs of {params['ms']} ms"
    if workload == "io":
        return f"I/O jobs of {params['ms']} ms (a real HTTP request to the upstream)"
    if workload == "cpu":
        body = refs.bodies.get("cpu")
        each = f", ≈ {body.cpu_ms:.1f} ms of CPU each in a bare loop" if body else ""
        return f"CPU jobs (n={params['n']:,}{each})"
    if workload == "mixed":
        return f"mixed jobs (n={params['n']:,} of CPU, then {params['ms']} ms of I/O)"
    return f"{workload} jobs"


def _mb(value: float) -> str:
    return f"{value:,.0f} MB" if math.isfinite(value) else "an unknown amount of memory"


def _memory(cell: BenchCell) -> str:
    """The tree's footprint: PSS first (shared pages split fairly), then RSS and USS."""
    pss, rss, uss = cell.pss_mb.peak, cell.rss_mb.peak, cell.uss_mb.peak
    if math.isfinite(pss):
        return f"{_mb(pss)} PSS ({_mb(rss)} RSS, {_mb(uss)} USS)"
    return f"{_mb(uss)} USS ({_mb(rss)} RSS)"


def _rate(cell: BenchCell) -> str:
    return f"{cell.throughput_per_s:,.0f} jobs/s"


def _of_ceiling(cell: BenchCell) -> str:
    eff = cell.efficiency
    if not math.isfinite(eff):
        return ""
    return f" ({eff * 100:.0f}% of its {cell.bound}-bound ceiling of {cell.ceiling_per_s:,.0f}/s)"


def flagged_verdict(run: BenchRun, workload: str) -> str | None:
    """One sentence on the cells below 25% of their ceiling (marked ⚠ in the tables)."""
    flagged = [c for c in cells(run, workload=workload) if c.pathology is not None]
    if not flagged:
        return None
    groups: dict[str, list[str]] = {}
    for c in flagged:
        assert c.pathology is not None
        what = f"{c.label} {c.mode} ({c.profile}, {c.efficiency * 100:.2g}% of {c.bound})"
        if c.pathology.cause == "stall":
            what += f": {c.pathology.detail}"
        elif c.pathology.cause == "contention":
            what += f" [{c.contention.other_cores:.2f}]"
        groups.setdefault(c.pathology.cause or "unknown", []).append(what)
    why = {
        "stall": "stalled",
        "contention": "the machine was shared (other processes' cores in brackets)",
        "overhead": "the consumer's own per-job path costs far more CPU than the job body",
        "unknown": "cause not known",
    }
    parts = [
        f"{why[cause][0].upper()}{why[cause][1:]}: {'; '.join(labels)}"
        for cause, labels in groups.items()
    ]
    return (
        f"⚠ Below {PATHOLOGY_EFFICIENCY * 100:.0f}% of the ceiling (the bound that held in "
        "brackets). " + ". ".join(parts) + "."
    )


def prefork_memory_for(
    rate: float, prefork: BenchCell, solo: BenchCell | None
) -> tuple[int, float] | None:
    """Processes and USS prefork would need for ``rate``, scaled from its measured cell.

    Each child adds what the measured children cost on average; the main process is what
    the solo worker (the same process, without children) holds.
    """
    per_child_rate = prefork.throughput_per_s / prefork.concurrency
    if not per_child_rate > 0:
        return None
    tree_uss = prefork.uss_mb.peak
    main_uss = solo.uss_mb.peak if solo else tree_uss / (prefork.concurrency + 1)
    per_child = (tree_uss - main_uss) / prefork.concurrency
    if not (math.isfinite(per_child) and per_child > 0):
        return None
    children = math.ceil(rate / per_child_rate)
    return children, main_uss + children * per_child


def workload_verdict(run: BenchRun, workload: str) -> list[str]:
    profile, mode = main_profile(run), main_mode(run)
    chosen = cells(run, workload=workload, mode=mode, profile=profile)
    top = best(chosen)
    if top is None:
        return []
    what = describe_workload(workload, top.params, run.references)
    lines = [
        f"For {what}, **{top.pool} at c={top.concurrency}** was fastest: {_rate(top)}"
        f"{_of_ceiling(top)}, with {_memory(top)} for the whole consumer."
    ]
    saturated = [
        f"{c.label} ({c.cpu_cores:.2f})"
        for c in chosen
        if c.pool in ONE_THREAD_POOLS and c.cpu_cores >= SATURATED_CORES
    ]
    if saturated and workload != "cpu":
        lines.append(
            "CPU-bound on the one core their Python runs on (cores used): "
            + ", ".join(saturated)
            + ". Their rate is 1 / the CPU time Celery's path costs per job, whatever the "
            "concurrency."
        )
    per_pool = {c.pool: c for c in best_per_pool(chosen)}
    solo = per_pool.get("solo")
    prefork = per_pool.get("prefork")
    if workload in ("io", "sleep", "mixed") and prefork and top.pool != "prefork":
        need = prefork_memory_for(top.throughput_per_s, prefork, solo)
        if need:
            children, uss = need
            lines.append(
                f"prefork did {_rate(prefork)} at c={prefork.concurrency} with "
                f"{_mb(prefork.uss_mb.peak)} USS; matching {top.pool}'s rate would "
                f"take about {children} processes and {_mb(uss)} USS (scaled from its children)."
            )
    if workload == "cpu" and solo:
        solo_rate = solo.throughput_per_s
        ratios = [
            f"{pool} {cell.throughput_per_s / solo_rate:.2f}× (c={cell.concurrency})"
            for pool, cell in per_pool.items()
            if pool != "solo" and solo_rate > 0
        ]
        if ratios:
            lines.append(f"Against solo ({_rate(solo)}): " + ", ".join(ratios) + ".")
    others = [
        f"{c.label} {_rate(c)} / {_mb(c.uss_mb.peak)}" for c in per_pool.values() if c is not top
    ]
    if others:
        lines.append("The others (throughput / USS peak): " + "; ".join(others) + ".")
    flagged = flagged_verdict(run, workload)
    if flagged:
        lines.append(flagged)
    return lines


def recommendation(run: BenchRun, workload: str) -> str | None:
    """The pool and concurrency to use: the least memory among those close to the fastest."""
    profile, mode = main_profile(run), main_mode(run)
    chosen = cells(run, workload=workload, mode=mode, profile=profile)
    top = best(chosen)
    if top is None:
        return None
    fastest = top.throughput_per_s
    close = [c for c in chosen if c.throughput_per_s >= CLOSE_ENOUGH * fastest]
    pick = min(close, key=lambda c: c.uss_mb.peak)
    why = (
        "the fastest"
        if pick is top
        else (f"within {100 - CLOSE_ENOUGH * 100:.0f}% of the fastest ({top.label}) on less memory")
    )
    return (
        f"{workload}: **{pick.pool} -c {pick.concurrency}** ({why}: {_rate(pick)}, "
        f"{_mb(pick.uss_mb.peak)} USS)."
    )
