"""Plain-language verdicts: what each workload's numbers say, and which pool to pick.

Every sentence comes from a small template per case, filled from the figures, so that no
case can produce a sentence that reads wrong: what each configuration ran its jobs on
(``models``), like compared with like (CPU-bound jobs by the cores each configuration could
use), and a recommendation that says what could make it wrong (flagged cells, a busy machine,
cells too short, the spread of repeats).
"""

from __future__ import annotations

import math

from poollab.measure.bench.ceilings import PATHOLOGY_EFFICIENCY, References
from poollab.measure.bench.report.explain import cpu_notes, why_not_parallel
from poollab.measure.bench.report.models import (
    asyncio_executor,
    cores_usable,
    execution_model,
    in_executor,
)
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
# workloads whose jobs are mostly their own CPU work: compared by the cores each could use
CPU_BOUND = frozenset({"cpu"})


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


def _share(eff: float) -> str:
    """A share of the ceiling: whole percents, two significant digits below 10%
    (a noop cell is a tiny share of its body's ceiling, never "0%")."""
    percent = eff * 100
    return f"{percent:.0f}%" if percent >= 10 else f"{percent:.2g}%"


def _of_ceiling(cell: BenchCell) -> str:
    eff = cell.efficiency
    if not math.isfinite(eff):
        return ""
    return f" ({_share(eff)} of its {cell.bound}-bound ceiling of {cell.ceiling_per_s:,.0f}/s)"


def _cores(k: int) -> str:
    return "one core" if k == 1 else f"{k} cores"


def _list(items: list[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


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


def fastest_line(top: BenchCell, refs: References) -> str:
    what = describe_workload(top.workload, top.params, refs)
    return (
        f"For {what}, **{top.pool} at c={top.concurrency}** — {execution_model(top, refs)} — "
        f"was fastest: {_rate(top)}{_of_ceiling(top)}, with {_memory(top)} for the whole "
        "consumer."
    )


def by_cores_lines(chosen: list[BenchCell], refs: References) -> list[str]:
    """CPU-bound jobs, like with like: one line per number of cores the CPU work could use."""
    groups: dict[int, list[BenchCell]] = {}
    for cell in chosen:
        groups.setdefault(cores_usable(cell, refs), []).append(cell)
    if len(groups) < 2:
        return []
    lines = []
    for k in sorted(groups):
        members = groups[k]
        top = best(members)
        assert top is not None
        items = [
            f"{c.label} — {execution_model(c, refs)} — {_rate(c)}, "
            f"{_share(c.efficiency)} of its ceiling"
            for c in members
            if math.isfinite(c.efficiency)
        ]
        lines.append(f"CPU work on {_cores(k)}: {'; '.join(items)}. Best of these: {top.label}.")
    return lines


def workload_verdict(run: BenchRun, workload: str) -> list[str]:
    profile, mode = main_profile(run), main_mode(run)
    refs = run.references
    chosen = cells(run, workload=workload, mode=mode, profile=profile)
    top = best(chosen)
    if top is None:
        return []
    lines = [fastest_line(top, refs)]
    if workload in CPU_BOUND:
        lines += by_cores_lines(chosen, refs)
    saturated = [
        f"{c.label} ({c.cpu_cores:.2f})"
        for c in chosen
        if c.pool in ONE_THREAD_POOLS and c.cpu_cores >= SATURATED_CORES
    ]
    if saturated and workload not in CPU_BOUND:
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
    if workload in CPU_BOUND and solo:
        solo_rate = solo.throughput_per_s
        ratios = [
            f"{pool} {cell.throughput_per_s / solo_rate:.2f}× (c={cell.concurrency})"
            for pool, cell in per_pool.items()
            if pool != "solo" and solo_rate > 0
        ]
        if ratios:
            lines.append(f"Against solo ({_rate(solo)}): " + ", ".join(ratios) + ".")
        lines += why_not_parallel(chosen, solo, refs, run.config.busy_cores)
    lines += cpu_notes(chosen, refs, solo)
    others = [
        f"{c.label} {_rate(c)} / {_mb(c.uss_mb.peak)}" for c in per_pool.values() if c is not top
    ]
    if others:
        lines.append("The others (throughput / USS peak): " + "; ".join(others) + ".")
    flagged = flagged_verdict(run, workload)
    if flagged:
        lines.append(flagged)
    short = [f"{c.label} {c.mode} ({c.short})" for c in cells(run, workload=workload) if c.short]
    if short:
        lines.append(
            "Too short to be sure of (their rate includes ramping up and down): "
            + "; ".join(short)
            + "."
        )
    return lines


def executor_note(pick: BenchCell, refs: References) -> str | None:
    """An asyncio pick for CPU work: say where that work ran, and what it compares with."""
    if pick.pool != "asyncio" or not (
        pick.workload in CPU_BOUND | {"mixed"}
        or (pick.workload in refs.user and in_executor(pick, refs))
    ):
        return None
    kind, workers = asyncio_executor(pick, refs)
    if kind == "process":
        return (
            f"Its CPU work ran in a {workers}-process pool beside the event loop: this compares "
            "with prefork's processes, not with one event loop running the jobs itself."
        )
    if kind == "thread":
        return (
            f"Its CPU work ran in a {workers}-thread pool beside the event loop, all under one "
            "GIL: this compares with the threads pool."
        )
    return "Its CPU work ran on the event loop itself: nothing else ran while a job computed."


def caveats(
    pick: BenchCell, top: BenchCell, chosen: list[BenchCell], refs: References, busy_cores: float
) -> list[str]:
    """What could make the recommendation wrong, each from the figures."""
    found = []
    mine, theirs = cores_usable(pick, refs), cores_usable(top, refs)
    if pick.workload in CPU_BOUND and mine < theirs:
        found.append(
            f"{pick.label} can use {_cores(mine)} for its CPU work and {top.label} {theirs}: "
            f"their ceilings are {pick.ceiling_per_s:,.0f}/s and {top.ceiling_per_s:,.0f}/s, "
            "so on a machine with its cores free the gap can grow that far"
        )
    if pick.pathology is not None:
        cause = pick.pathology.cause or "cause not known"
        found.append(f"{pick.label} itself is flagged ⚠ ({cause}: {pick.pathology.detail})")
    flagged = [c.label for c in chosen if c.pathology is not None and c is not pick]
    if flagged:
        found.append(f"flagged ⚠ below 25% of their ceiling: {_list(flagged)}")
    busy = [
        f"{c.label} ({c.contention.other_cores:.2f})"
        for c in chosen
        if c.contention.other_cores > busy_cores
    ]
    if busy:
        found.append(
            f"other programs used more than {busy_cores:.2f} cores during {_list(busy)}: "
            "those rates are lower than this machine can do"
        )
    short = [f"{c.label} ({c.short})" for c in chosen if c.short]
    if short:
        found.append(f"short cells: {_list(short)}")
    found.append(_noise(pick, chosen))
    return found


def _noise(pick: BenchCell, chosen: list[BenchCell]) -> str:
    if pick.throughput_spread is None:
        return "one run per cell, so the noise between runs was not measured (`--repeat 3`)"
    spread = pick.throughput_spread
    text = f"{pick.label}'s repeats spread {spread * 100:.0f}%"
    rivals = sorted(
        (c for c in chosen if c is not pick and c.throughput_per_s > 0),
        key=lambda c: abs(c.throughput_per_s - pick.throughput_per_s),
    )
    if rivals and pick.throughput_per_s > 0:
        near = rivals[0]
        gap = abs(near.throughput_per_s - pick.throughput_per_s) / pick.throughput_per_s
        if gap <= spread:
            text += f", more than its {gap * 100:.0f}% gap to {near.label}: call those two even"
    return text


def recommendation(run: BenchRun, workload: str) -> str | None:
    """The pool and concurrency to use: the least memory among those close to the fastest,
    what it ran its jobs on, and the caveats."""
    profile, mode = main_profile(run), main_mode(run)
    refs = run.references
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
        else f"within {100 - CLOSE_ENOUGH * 100:.0f}% of the fastest ({top.label}) on less memory"
    )
    parts = [
        f"{workload}: **{pick.pool} -c {pick.concurrency}** — {execution_model(pick, refs)} — "
        f"{why}: {_rate(pick)}, {_mb(pick.uss_mb.peak)} USS."
    ]
    note = executor_note(pick, refs)
    if note:
        parts.append(note)
    found = caveats(pick, top, chosen, refs, run.config.busy_cores)
    parts.append("Caveats: " + "; ".join(found) + ".")
    return " ".join(parts)
