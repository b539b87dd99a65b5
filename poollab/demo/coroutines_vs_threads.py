"""Coroutines vs threads: time to create, and memory held by, 1,000 / 10,000 / 100,000 of each."""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib.axes import Axes

from poollab.demo.budget import Deadline
from poollab.demo.context import DemoContext
from poollab.demo.result import Cell, DemoResult, Row, Verdict, ratio, verdict_from
from poollab.demo.subproc import run_child
from poollab.demo.thread_limits import thread_cap

NAME = "coroutines-vs-threads"
CLAIM = (
    "Coroutines are cheaper than threads to create and to hold: at least 2x less time and 2x "
    "less memory per unit of concurrency."
)
TALK = (
    "asyncio coroutines scale to many more concurrent units than threads, at a fraction of "
    "the memory"
)
COUNTS = (1_000, 10_000, 100_000)
QUICK_THREAD_CAP = 1_000
KB = 1024
MB = 2**20
# "cheaper": a thread must cost at least this many times a coroutine, in time and in memory
CHEAPER = 2.0


@dataclass(frozen=True)
class _Plan:
    kind: str
    wanted: int
    count: int
    status: str


def run(ctx: DemoContext) -> DemoResult:
    budget = ctx.pick(3.0, 10.0)
    deadline = Deadline(ctx.pick(9.0, 40.0))
    plans = [_Plan("coroutines", n, n, "ok") for n in COUNTS]
    plans += [_thread_plan(n, ctx.quick) for n in COUNTS]
    rows: list[Row] = []
    with ctx.progress.task("coroutines-vs-threads: fresh process per row", len(plans)) as advance:
        for plan in plans:
            rows.append(_measure(plan, budget, deadline))
            advance(1)
    pairs = _comparable(rows)
    verdict, reason = _verdict(pairs)
    summary: dict[str, Cell] = {}
    if pairs:
        units, coroutine, thread = pairs[-1]
        summary = {
            "compared_at_units": units,
            "kb_per_coroutine": coroutine["kb_per_unit"],
            "kb_per_thread": thread["kb_per_unit"],
            "memory_ratio": round(
                ratio(float(thread["kb_per_unit"] or 0), float(coroutine["kb_per_unit"] or 0)), 1
            ),
            "us_per_coroutine": coroutine["create_us_per_unit"],
            "us_per_thread": thread["create_us_per_unit"],
        }
    notes = [
        "each row runs in a fresh interpreter; memory is the RSS growth while every unit "
        "waits on one event (coroutines: asyncio tasks; threads: threading.Thread)",
        "virtual_mb: address space reserved (mostly thread stacks, not resident)",
        f"held means: at every count both kinds ran in full, a thread costs at least {CHEAPER}x "
        "a coroutine's memory and creation time",
    ]
    if ctx.quick:
        notes.append(
            f"quick mode caps threads at {QUICK_THREAD_CAP:,}; run without --quick for more"
        )
    notes += sorted({str(r["status"]) for r in rows if str(r["status"]).startswith("capped")})
    return DemoResult(
        name=NAME,
        claim=CLAIM,
        talk=TALK,
        columns=[
            "kind",
            "units",
            "created",
            "create_ms",
            "create_us_per_unit",
            "rss_mb",
            "kb_per_unit",
            "virtual_mb",
            "status",
        ],
        rows=rows,
        verdict=verdict,
        reason=reason,
        summary=summary,
        notes=notes,
        chart=_chart(ctx, rows),
        quick=ctx.quick,
    )


def _thread_plan(wanted: int, quick: bool) -> _Plan:
    if quick and wanted > QUICK_THREAD_CAP:
        return _Plan(
            "threads", wanted, 0, f"not run: quick mode caps threads at {QUICK_THREAD_CAP:,}"
        )
    count, reason = thread_cap(wanted)
    if reason is None:
        return _Plan("threads", wanted, count, "ok")
    return _Plan("threads", wanted, count, f"capped at {count:,}: {reason}")


def _measure(plan: _Plan, budget: float, deadline: Deadline) -> Row:
    row: Row = {"kind": plan.kind, "units": plan.wanted, "status": plan.status}
    if plan.count == 0:
        return row
    if deadline.expired():
        row["status"] = "not run: the experiment's time budget ran out"
        return row
    answer = run_child(
        "units_child.py",
        [plan.kind, str(plan.count), str(min(budget, deadline.remaining()))],
        timeout=budget + 60,
    )
    created = int(answer["created"])
    seconds = float(answer["seconds"])
    rss = float(answer["rss_delta"])
    row.update(
        {
            "created": created,
            "create_ms": round(seconds * 1000, 1),
            "create_us_per_unit": round(seconds * 1e6 / created, 1),
            "rss_mb": round(rss / MB, 1),
            "kb_per_unit": round(rss / KB / created, 2),
            "virtual_mb": round(float(answer["vms_delta"]) / MB, 1),
        }
    )
    if answer["stopped"]:
        row["status"] = f"stopped at {created:,}: {answer['stopped']}"
    return row


def _comparable(rows: list[Row]) -> list[tuple[int, Row, Row]]:
    """(units, coroutine row, thread row) for every count both kinds ran in full."""
    full = {
        (str(r["kind"]), int(r["units"] or 0)): r
        for r in rows
        if r.get("created") is not None and r["created"] == r["units"]
    }
    return [
        (n, full[("coroutines", n)], full[("threads", n)])
        for n in COUNTS
        if ("coroutines", n) in full and ("threads", n) in full
    ]


def _verdict(pairs: list[tuple[int, Row, Row]]) -> tuple[Verdict, str]:
    if not pairs:
        return Verdict.NOT_HELD, "no count ran to completion for both kinds"
    failures = []
    for units, coroutine, thread in pairs:
        memory = ratio(float(thread["kb_per_unit"] or 0), float(coroutine["kb_per_unit"] or 0))
        if memory < CHEAPER:
            failures.append(
                f"at {units:,} a thread held only {memory:.1f}x a coroutine's memory (< {CHEAPER}x)"
            )
        create = ratio(
            float(thread["create_us_per_unit"] or 0), float(coroutine["create_us_per_unit"] or 0)
        )
        if create < CHEAPER:
            failures.append(
                f"at {units:,} a thread took only {create:.1f}x a coroutine's time to create "
                f"(< {CHEAPER}x)"
            )
    return verdict_from(failures, lambda: _held_reason(*pairs[-1]))


def _chart(ctx: DemoContext, rows: list[Row]) -> str | None:
    def draw(axes: list[Axes]) -> None:
        left, right = axes
        measured = [r for r in rows if r.get("created")]
        series_mem: dict[str, list[float]] = {}
        series_time: dict[str, list[float]] = {}
        xs: dict[str, list[float]] = {}
        for r in measured:
            kind = str(r["kind"])
            xs.setdefault(kind, []).append(float(r["created"] or 0))
            series_mem.setdefault(kind, []).append(float(r["rss_mb"] or 0))
            series_time.setdefault(kind, []).append(float(r["create_ms"] or 0))
        for ax, series, title, label in (
            (left, series_mem, "memory held (RSS growth)", "MB (log)"),
            (right, series_time, "time to create", "ms (log)"),
        ):
            for kind, values in series.items():
                ax.plot(xs[kind], values, marker="o", label=kind)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("units created (log)")
            ax.set_ylabel(label)
            ax.set_title(title, fontsize=10)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)

    return ctx.draw_chart(NAME, "poollab demo coroutines-vs-threads", draw, panels=2)


def _held_reason(units: int, coroutine: Row, thread: Row) -> str:
    return (
        f"at {units:,} units: {coroutine['kb_per_unit']} KB and "
        f"{coroutine['create_us_per_unit']} us per coroutine against {thread['kb_per_unit']} KB "
        f"and {thread['create_us_per_unit']} us per thread"
    )
