"""What the report says, in order: verdicts, charts, tables, the machine and the method."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable

from poollab.measure.bench.ceilings import References
from poollab.measure.bench.report.charts import Chart
from poollab.measure.bench.report.document import (
    Bullets,
    Code,
    Document,
    Heading,
    Image,
    Para,
    TableBlock,
)
from poollab.measure.bench.report.models import execution_model
from poollab.measure.bench.report.select import cells, main_mode, main_profile, workloads
from poollab.measure.bench.report.verdict import describe_workload, recommendation, workload_verdict
from poollab.measure.bench.results import BenchCell, BenchRun, MemoryMb
from poollab.measure.bench.userjob import describe_run
from poollab.measure.jsonrecord import to_json
from poollab.measure.table import figure as _f
from poollab.measure.table import percent as _pct

# other processes' CPU use above this (cores, median over the cells) is reported as a warning
BUSY_MACHINE_CORES = 0.25


def build_document(run: BenchRun, charts: list[Chart]) -> Document:
    doc = Document("Pool Lab: which pool should run these jobs?")
    doc.add(
        Para(
            f"Measured {run.started_at} on {run.machine.cores} cores "
            f"({run.machine.cpu_model}), {len(run.cells)} cells in "
            f"{run.duration_s:,.0f} s. The comparison below is drawn for profile "
            f"**{main_profile(run)}**, throughput in **{main_mode(run)}** mode "
            "(the consumer's own rate) and latency in live mode (end to end)."
        ),
        Code(" ".join(run.command or ["poollab", "bench"])),
    )
    if run.interrupted:
        doc.add(
            Heading(2, "Incomplete run"),
            Para("The run was stopped before every cell was measured; this is what it had."),
        )
    _verdicts(doc, run)
    _contention(doc, run)
    doc.add(Heading(1, "Charts"))
    for chart in charts:
        doc.add(Heading(2, chart.title), Para(chart.caption), Image(chart.file, chart.title))
    doc.add(Heading(1, "Every cell"))
    for workload in workloads(run):
        _cell_table(doc, workload, cells(run, workload=workload), run)
    _profiles(doc, run)
    _publisher(doc, run)
    _machine(doc, run)
    _method(doc, run)
    doc.add(Heading(1, "Configuration"), Code(json.dumps(to_json(run.config), indent=2)))
    return doc


def _verdicts(doc: Document, run: BenchRun) -> None:
    doc.add(Heading(1, "Verdict"))
    for workload in workloads(run):
        lines = workload_verdict(run, workload)
        if lines:
            doc.add(Bullets(lines))
    picks = [r for w in workloads(run) if (r := recommendation(run, w))]
    if picks:
        doc.add(
            Heading(2, "Recommendation"),
            Para(
                "The pool and concurrency to run each kind of job with: the one using the "
                "least memory among those within 10% of the fastest."
            ),
            Bullets(picks),
        )


def _contention(doc: Document, run: BenchRun) -> None:
    others = [c.contention.other_cores for c in run.cells]
    others = [o for o in others if math.isfinite(o)]
    if not others:
        return
    median, worst = statistics.median(others), max(others)
    text = (
        f"Other processes on the machine used a median of {median:.2f} cores (at most "
        f"{worst:.2f}) while the cells ran (the `contention` figures in results.json)."
    )
    limit = run.config.busy_cores
    disturbed = [
        f"{c.label} {c.workload} {c.mode} ({c.profile}): {c.contention.other_cores:.2f}"
        for c in run.cells
        if c.contention.other_cores > limit
    ]
    if disturbed and len(disturbed) == len(run.cells):
        text += f" Every cell shared the machine with more than {limit:.2f} cores of other work."
    elif disturbed:
        text += (
            f" Cells that shared the machine with more than {limit:.2f} cores of other work, "
            "to read with care: " + "; ".join(disturbed) + "."
        )
    if median > BUSY_MACHINE_CORES:
        doc.add(
            Heading(2, "Warning: the machine was busy"),
            Para(text + " The rates are lower than this machine can do; compare them side by "
                 "side, not with other runs."),
        )  # fmt: skip
    else:
        doc.add(Para(text))


# every column of the per-cell tables: a header and how to fill it, so that a column
# cannot lose its header (nor a header its column)
CELL_COLUMNS: list[tuple[str, Callable[[BenchCell, BenchRun], str]]] = [
    ("pool", lambda c, r: c.pool),
    ("c", lambda c, r: str(c.concurrency)),
    ("ran as", lambda c, r: execution_model(c, r.references)),
    ("profile", lambda c, r: c.profile),
    ("mode", lambda c, r: c.mode),
    ("jobs", lambda c, r: str(c.jobs)),
    ("done", lambda c, r: str(c.completed)),
    ("failed", lambda c, r: str(c.failed)),
    ("jobs/s", lambda c, r: _f(c.throughput_per_s)),
    ("ceiling/s", lambda c, r: _f(c.ceiling_per_s, ",.0f")),
    ("of ceiling", lambda c, r: _pct(c.efficiency) + (" ⚠" if c.pathology else "")),
    ("bound", lambda c, r: str(c.bound)),
    ("× solo", lambda c, r: _f(c.x_solo, ".2f")),
    ("steady s", lambda c, r: _f(c.steady_s, ".2f") + (" short" if c.short else "")),
    ("p50 ms", lambda c, r: _f(c.latency_ms.get("p50"))),
    ("p95 ms", lambda c, r: _f(c.latency_ms.get("p95"))),
    ("p99 ms", lambda c, r: _f(c.latency_ms.get("p99"))),
    ("max ms", lambda c, r: _f(c.latency_ms.get("max"))),
    ("wait p50 ms", lambda c, r: _f(c.queue_wait_ms.get("p50"))),
    ("RSS idle/peak/mean MB", lambda c, r: _memory(c.rss_mb)),
    ("PSS idle/peak/mean MB", lambda c, r: _memory(c.pss_mb)),
    ("USS idle/peak/mean MB", lambda c, r: _memory(c.uss_mb)),
    ("cores", lambda c, r: _f(c.cpu_cores, ".2f")),
    (
        "CPU ms/job main/children",
        lambda c, r: (
            f"{_f(c.cpu_ms_per_job.main_ms, '.2f')}/{_f(c.cpu_ms_per_job.children_ms, '.2f')}"
        ),
    ),
    ("other cores", lambda c, r: _f(c.contention.other_cores, ".2f")),
    ("Redis commands/job", lambda c, r: _f(c.redis.commands_per_job, ".1f")),
    ("Redis connections/job", lambda c, r: _f(c.redis.connections_per_job, ".2f")),
]


def _cell_table(doc: Document, workload: str, chosen: list[BenchCell], run: BenchRun) -> None:
    headers = [header for header, _ in CELL_COLUMNS]
    rows = [[value(c, run) for _, value in CELL_COLUMNS] for c in chosen]
    params = chosen[0].params if chosen else {}
    doc.add(Heading(2, describe_workload(workload, params, run.references)))
    user_job = describe_run(run, workload)  # --job: the bare loop, how each consumer ran it
    if user_job:
        doc.add(Para(user_job))
    doc.add(TableBlock(headers, rows))


def _memory(figures: MemoryMb) -> str:
    return "/".join(_f(v, ".0f") for v in (figures.idle, figures.peak, figures.mean))


def _profiles(doc: Document, run: BenchRun) -> None:
    profiles = list(run.config.profiles)
    doc.add(Heading(1, "Settings profiles"))
    doc.add(
        Bullets(
            [
                f"**{name}**: {run.profiles[name].summary}"
                for name in profiles
                if name in run.profiles
            ]
        )
    )
    if len(profiles) < 2:
        return
    first, last = profiles[0], profiles[-1]
    mode = main_mode(run)
    rows = []
    for workload in workloads(run):
        for cell in cells(run, workload=workload, mode=mode, profile=last):
            base = [
                c
                for c in cells(run, workload=workload, mode=mode, profile=first)
                if c.pool == cell.pool and c.concurrency == cell.concurrency
            ]
            if not base:
                continue
            before, after = base[0].throughput_per_s, cell.throughput_per_s
            gain = f"{after / before:.2f}×" if before > 0 else "–"
            rows.append(
                [
                    workload,
                    cell.pool,
                    str(cell.concurrency),
                    _f(before),
                    _f(after),
                    gain,
                    _pct(base[0].efficiency),
                    _pct(cell.efficiency),
                ]
            )
    doc.add(
        TableBlock(
            [
                "workload",
                "pool",
                "c",
                f"{first} jobs/s",
                f"{last} jobs/s",
                "gain",
                f"{first} of ceiling",
                f"{last} of ceiling",
            ],
            rows,
            caption=f"What {last} buys over {first} ({mode} mode)",
        )
    )


def _publisher(doc: Document, run: BenchRun) -> None:
    publisher = run.publisher
    lines = []
    for figures, what in (
        (publisher.drain, "alone (consumer held)"),
        (publisher.live, "beside a running consumer"),
    ):
        if figures is not None:
            lines.append(
                f"{what}: median {_f(figures.median_per_s, ',.0f')} jobs/s, best "
                f"{_f(figures.max_per_s, ',.0f')} jobs/s"
            )
    if lines:
        doc.add(
            Heading(1, "The publisher's own rate"),
            Para(publisher.method),
            Bullets(lines),
        )


def _machine(doc: Document, run: BenchRun) -> None:
    machine = run.machine
    libraries = ", ".join(f"{k} {v}" for k, v in machine.libraries.items())
    doc.add(
        Heading(1, "Machine"),
        Bullets(
            [
                f"{machine.cores} usable cores ({machine.logical_cpus} logical), "
                f"{machine.cpu_model}, {machine.memory_mb:,} MB",
                f"{machine.os}; Python {machine.python} ({machine.python_implementation})",
                f"Redis {machine.redis_server} ({run.config.broker})",
                f"libraries: {libraries}",
                f"load average at start: {machine.load_average_at_start}",
            ]
        ),
    )


def _method(doc: Document, run: BenchRun) -> None:
    refs = run.references
    doc.add(
        Heading(1, "Method"),
        Bullets(
            [
                "One consumer runs at a time, freshly started for each pool, concurrency and "
                "profile; each cell runs after a warm-up of the same jobs.",
                "**drain**: the consumer's process group is frozen (SIGSTOP) while the queue "
                "fills, then thawed: its own rate = jobs / (last finish − first start).",
                "**live**: jobs are published while the consumer runs: end to end = "
                "jobs / (last finish − first send).",
                "Latency = finished − sent; queue wait = started − sent (stamped by the "
                "publisher and the consumer inside the result, no extra round trip).",
                "Memory and CPU: the consumer samples its own process tree every "
                f"{run.config.sample_interval_s} s (RSS and USS summed over the "
                "tree; CPU seconds / wall seconds).",
                "Ceilings, from bounds that do not depend on the system measured: the least "
                "of **slots** (concurrency / (latency + the job body's CPU time)), **cores** "
                "(cores the configuration can use / the body's CPU time: 1 for solo, threads, "
                "gevent and the asyncio consumer's event loop; min(c, "
                f"{refs.cores}) for prefork; min({refs.asyncio_cpu_workers}, {refs.cores}) "
                "for the asyncio consumer's CPU executor) and, live, the **offered** rate "
                "(jobs / (last send − first send)). "
                + _bodies_sentence(refs)
                + "Efficiency = throughput / ceiling; ⚠ marks a cell "
                "below 25% of it. × solo is plainly relative: throughput / the solo cell's "
                "of the same workload, mode and profile.",
            ]
        ),
    )


def _bodies_sentence(refs: References) -> str:
    """The built-in job bodies' bare-loop figures; a --job-only run has none (its callables'
    figures have a paragraph of their own)."""
    if not refs.bodies:
        return ""
    timings = ", ".join(
        f"{w} {b.cpu_ms:.3g} ms of CPU ({b.jobs:,} in {b.wall_ms * b.jobs:,.0f} ms)"
        for w, b in refs.bodies.items()
    )
    return f"Job bodies: {timings} ({refs.method}). "
