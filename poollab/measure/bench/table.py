"""The summary table printed at the end of a run: one table per workload, a row per consumer."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.table import Table

from poollab.measure.bench.config import WORKLOADS

POOL_ORDER = ("solo", "prefork", "threads", "gevent", "asyncio")


def _num(value: Any, fmt: str = ",.1f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return format(value, fmt)


def _pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value * 100:.0f}%"


def row_order(cell: dict[str, Any]) -> tuple[Any, ...]:
    pool = cell["pool"]
    rank = POOL_ORDER.index(pool) if pool in POOL_ORDER else len(POOL_ORDER)
    return (cell["profile"], rank, cell["concurrency"])


def workload_title(workload: str, params: dict[str, Any]) -> str:
    detail = ", ".join(f"{k}={v}" for k, v in params.items())
    return f"{workload} jobs ({detail})" if detail else f"{workload} jobs"


def summary_tables(results: dict[str, Any]) -> list[Table]:
    cells = results["cells"]
    profiles = sorted({c["profile"] for c in cells})
    tables = []
    workloads = [w for w in WORKLOADS if any(c["workload"] == w for c in cells)]
    for workload in workloads:
        chosen = [c for c in cells if c["workload"] == workload]
        title = workload_title(workload, chosen[0]["params"])
        if len(profiles) == 1:
            title += f", profile {profiles[0]}"
        table = Table(title=title, title_justify="left")
        columns = ["pool", "c", "drain/s", "live/s", "of ceiling", "p50/p99 ms", "RSS MB",
                   "PSS MB", "USS MB", "cores"]  # fmt: skip
        if len(profiles) > 1:
            columns.insert(2, "profile")
        for column in columns:
            table.add_column(column, justify="left" if column in ("pool", "profile") else "right")
        rows: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
        for cell in sorted(chosen, key=row_order):
            key = (cell["pool"], cell["concurrency"], cell["profile"])
            rows.setdefault(key, {})[cell["mode"]] = cell
        for (pool, level, profile), modes in rows.items():
            table.add_row(*_row(pool, level, profile, modes, with_profile=len(profiles) > 1))
        tables.append(table)
    return tables


def _row(
    pool: str, level: int, profile: str, modes: dict[str, dict[str, Any]], with_profile: bool
) -> list[str]:
    drain, live = modes.get("drain"), modes.get("live")
    # the consumer's own rate (drain) is what the ceiling compares; latency is end to end
    main = drain or live or {}
    lat = (live or drain or {}).get("latency_ms", {})
    rss, uss = main.get("rss_mb", {}), main.get("uss_mb", {})
    row = [
        pool,
        str(level),
        _num(drain and drain["throughput_per_s"]),
        _num(live and live["throughput_per_s"]),
        f"{_pct(main.get('efficiency'))} {main.get('bound', '')}",
        f"{_num(lat.get('p50'), ',.0f')}/{_num(lat.get('p99'), ',.0f')}",
        f"{_num(rss.get('idle'), '.0f')}→{_num(rss.get('peak'), '.0f')}",
        _num(main.get("pss_mb", {}).get("peak"), ".0f"),
        _num(uss.get("peak"), ".0f"),
        _num(main.get("cpu_cores"), ".2f"),
    ]
    if with_profile:
        row.insert(2, profile)
    return row


def print_summary(results: dict[str, Any], console: Console) -> None:
    for table in summary_tables(results):
        console.print(table)
    refs = results["references"]
    publisher = results.get("publisher", {})
    console.print(
        f"ceilings from {refs['source']}: solo {refs['solo_noop_per_s']:,.0f} noop/s, "
        f"{refs['solo_cpu_per_s']:,.1f} cpu/s on {refs['cores']} cores; "
        f"I/O: concurrency / {refs['io_latency_ms']} ms"
    )
    for mode, figures in publisher.items():
        if isinstance(figures, dict):
            held = "consumer held" if mode == "drain" else "consumer running"
            console.print(
                f"publisher ({held}): median {figures['median_per_s']:,.0f} jobs/s, "
                f"best {figures['max_per_s']:,.0f} jobs/s"
            )
