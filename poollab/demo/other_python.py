"""The part the `subinterpreters` and `free-threading` experiments share: time serial calls
against pools in another Python (the child `parallel_child.py`), and show the speed-ups over
serial with the interpreter's version and build."""

from __future__ import annotations

import json
from typing import Any

from matplotlib.axes import Axes

from poollab.demo import scaling
from poollab.demo.context import DemoContext
from poollab.demo.interpreters import Interpreter, build_of
from poollab.demo.result import Cell, DemoResult, Row, Verdict
from poollab.measure import charts

COLUMNS = ["kind", "workers", "seconds", "speedup", "cores_used"]
# serial calls of pure Python keep one core busy; much less means others took the core
SERIAL_CORE_SHARE = 0.8


def measure(
    ctx: DemoContext, interpreter: Interpreter, kinds: list[str], description: str
) -> dict[str, Any]:
    """The child's answer: rows of (kind, workers, seconds, speedup over serial, cores_used)
    with as many workers as the machine has usable cores, and the interpreter it ran in."""
    _, usable = scaling.usable_workers()
    budget_s = ctx.pick(7.0, 50.0)
    spec = {
        "kinds": kinds,
        "workers": usable,
        "calls": scaling.CALLS,
        "serial_s": ctx.pick(0.25, 1.6),
        "repeats": ctx.pick(2, 3),
        "budget_s": budget_s,
    }
    with ctx.progress.task(description, total=1) as advance:
        # the budget bounds the timing loop; starting pools and calibrating come on top
        answer = interpreter.run(["measure", json.dumps(spec)], timeout=budget_s + 60)
        advance(1)
    return answer


def rows_of(answer: dict[str, Any]) -> list[Row]:
    return [{column: row.get(column) for column in COLUMNS} for row in answer["rows"]]


def speedup(rows: list[Row], kind: str) -> float:
    for row in rows:
        if row["kind"] == kind:
            return float(row["speedup"] or 0)
    raise KeyError(kind)


def summary(interpreter: Interpreter, how: str, answer: dict[str, Any]) -> dict[str, Cell]:
    """What the figures were measured in: the interpreter, its build, and how it was chosen."""
    described = answer["python"]
    return {
        "python": build_of(described),
        "sys_version": described["sys_version"],
        "run_as": interpreter.label(),
        "chosen": how,
        "iterations_per_call": answer["iterations_per_call"],
        **{f"{kind}_start_ms": ms for kind, ms in answer["start_ms"].items()},
    }


def judged(
    ctx: DemoContext,
    about: tuple[str, str, str],
    chosen: tuple[Interpreter, str],
    answer: dict[str, Any],
    kind: str,
) -> DemoResult:
    """The result: held when ``kind`` with every usable core ran at least ``needed_speedup``
    times faster than serial calls. ``about`` is the experiment's name, claim and talk;
    ``chosen`` the interpreter and how it was chosen."""
    name, claim, talk = about
    rows = rows_of(answer)
    cpu, usable = scaling.usable_workers()
    gained = speedup(rows, kind)
    verdict, reason = scaling.parallel_verdict(cpu, gained, kind)
    others = [str(r["kind"]) for r in rows if r["kind"] not in ("serial", kind)]
    if verdict is Verdict.HELD and others:
        reason += "; " + ", ".join(f"{k} {speedup(rows, k):.2f}x" for k in others)
    verdict, reason = starved(rows, verdict, reason)
    needed = scaling.needed_speedup(usable)
    return DemoResult(
        name=name,
        claim=claim,
        talk=talk,
        columns=COLUMNS,
        rows=rows,
        verdict=verdict,
        reason=reason,
        summary={f"{kind}_speedup_{usable}": round(gained, 2), **summary(*chosen, answer)},
        notes=[
            f"held means: {usable} {kind} at least {needed:.1f}x faster than serial calls",
            f"{answer['calls']} calls of the same pure-Python loop in every row; speed-ups are "
            "over the serial row; cores_used is blank for processes (their CPU is not this "
            "process's)",
        ],
        chart=chart(ctx, name, rows, needed, f"poollab demo {name}: {kind} against serial"),
        quick=ctx.quick,
    )


def starved(rows: list[Row], verdict: Verdict, reason: str) -> tuple[Verdict, str]:
    """Inconclusive, whatever the speed-ups, when the serial calls did not get a whole core:
    every speed-up is over them, so other programs' load would inflate all of them."""
    serial = next(row for row in rows if row["kind"] == "serial")
    share = float(serial["cores_used"] or 0)
    if share >= SERIAL_CORE_SHARE:
        return verdict, reason
    return Verdict.INCONCLUSIVE, (
        f"{reason}; but the serial calls got only {share:.2f} of a core (other programs took "
        f"the rest; under {SERIAL_CORE_SHARE} makes every speed-up over them unfair): run it "
        "again on a quiet machine"
    )


def chart(ctx: DemoContext, name: str, rows: list[Row], needed: float, title: str) -> str | None:
    def draw(axes: list[Axes]) -> None:
        (ax,) = axes
        charts.bars(
            ax,
            [f"{row['kind']} x{row['workers']}" for row in rows],
            [float(row["speedup"] or 0) for row in rows],
            title="speed-up over serial calls (higher is better)",
            ylabel="x",
        )
        ax.axhline(1.0, color="grey", linestyle="--")
        ax.axhline(needed, color="green", linestyle=":", label=f"claim: {needed:.1f}x")
        ax.legend(fontsize=7)

    return ctx.draw_chart(name, title, draw)
