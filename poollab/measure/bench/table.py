"""The summary table printed at the end of a run: one table per workload, a row per consumer."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from poollab.measure.bench.config import ordered_workloads
from poollab.measure.bench.report.select import pool_rank
from poollab.measure.bench.results import BenchCell, BenchRun
from poollab.measure.table import figure, percent, rich_table


def row_order(cell: BenchCell) -> tuple[str, int, int]:
    return (cell.profile, pool_rank(cell.pool), cell.concurrency)


def workload_title(workload: str, params: dict[str, int]) -> str:
    detail = ", ".join(f"{k}={v}" for k, v in params.items())
    return f"{workload} jobs ({detail})" if detail else f"{workload} jobs"


def summary_tables(run: BenchRun) -> list[Table]:
    profiles = sorted({c.profile for c in run.cells})
    with_profile = len(profiles) > 1
    tables = []
    workloads = ordered_workloads({c.workload for c in run.cells}, run.config.workloads)
    for workload in workloads:
        chosen = [c for c in run.cells if c.workload == workload]
        title = workload_title(workload, chosen[0].params)
        if not with_profile:
            title += f", profile {profiles[0]}"
        columns = ["pool", "c", "drain/s", "live/s", "of ceiling", "p50/p99 ms", "RSS MB",
                   "PSS MB", "USS MB", "cores"]  # fmt: skip
        if with_profile:
            columns.insert(2, "profile")
        rows: dict[tuple[str, int, str], dict[str, BenchCell]] = {}
        for cell in sorted(chosen, key=row_order):
            rows.setdefault((cell.pool, cell.concurrency, cell.profile), {})[cell.mode] = cell
        tables.append(
            rich_table(
                title,
                columns,
                (
                    _row(pool, level, profile, modes, with_profile)
                    for (pool, level, profile), modes in rows.items()
                ),
                text_columns=("pool", "profile"),
            )
        )
    return tables


def _row(
    pool: str, level: int, profile: str, modes: dict[str, BenchCell], with_profile: bool
) -> list[str]:
    drain, live = modes.get("drain"), modes.get("live")
    # the consumer's own rate (drain) is what the ceiling compares; latency is end to end
    main = drain or live
    assert main is not None
    lat = (live or main).latency_ms
    row = [
        pool,
        str(level),
        figure(drain and drain.throughput_per_s),
        figure(live and live.throughput_per_s),
        f"{percent(main.efficiency)} {main.bound}{' ⚠' if main.pathology else ''}"
        # too little steady state to trust the rate (see poollab.measure.bench.steady)
        + (" short" if main.short else ""),
        f"{figure(lat.get('p50'), ',.0f')}/{figure(lat.get('p99'), ',.0f')}",
        f"{figure(main.rss_mb.idle, '.0f')}→{figure(main.rss_mb.peak, '.0f')}",
        figure(main.pss_mb.peak, ".0f"),
        figure(main.uss_mb.peak, ".0f"),
        figure(main.cpu_cores, ".2f"),
    ]
    if with_profile:
        row.insert(2, profile)
    return row


def print_summary(run: BenchRun, console: Console) -> None:
    for table in summary_tables(run):
        console.print(table)
    refs = run.references
    timed = [f"{w} {b.cpu_ms:.3g} ms" for w, b in refs.bodies.items()]
    # --job: the callable's CPU and wall per call (the slots bound's denominator)
    timed += [f"{w} {u.cpu_ms:.3g} ms (wall {u.wall_ms:.3g} ms)" for w, u in refs.user.items()]
    bodies = ", ".join(timed)
    console.print(
        f"ceilings: the least of slots (c / (latency + body CPU)), cores (usable cores / "
        f"body CPU, {refs.cores} on this machine) and, live, the offered rate; job bodies' "
        f"CPU in a bare loop: {bodies}; ⚠ below 25% of the ceiling; short: steady state "
        "below --cell-s"
    )
    for mode, figures in (("drain", run.publisher.drain), ("live", run.publisher.live)):
        if figures is not None:
            held = "consumer held" if mode == "drain" else "consumer running"
            console.print(
                f"publisher ({held}): median {figures.median_per_s:,.0f} jobs/s, "
                f"best {figures.max_per_s:,.0f} jobs/s"
            )
