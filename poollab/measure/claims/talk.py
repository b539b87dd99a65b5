"""docs/TALK.md's blocks, from ``poollab demo NAME --json`` documents under docs/results/talk/.

Generic over DemoResult: any experiment's document renders to its tables, measured figures,
claim as tested, the talk's figure, verdict with its reason, and the command that ran it. A
directory as the source renders the summary table of every document in it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poollab.demo.result import DemoResult
from poollab.demo.table import format_cell
from poollab.measure.claims import markdown


@dataclass(frozen=True)
class DemoRun:
    command: str
    recorded: str
    machine: dict[str, Any]
    result: DemoResult


def is_demo_document(data: object) -> bool:
    return isinstance(data, dict) and isinstance(data.get("results"), list)


def read(path: Path) -> DemoRun:
    data = json.loads(path.read_text())
    if not is_demo_document(data) or len(data["results"]) != 1:
        raise ValueError(
            f"{path}: expected the JSON of `poollab demo NAME --json` for one experiment"
        )
    return DemoRun(
        command=str(data.get("command", "")),
        recorded=str(data.get("recorded", "")),
        machine=dict(data.get("machine", {})),
        result=DemoResult.from_json(data["results"][0]),
    )


def _header(run: DemoRun) -> str:
    machine = run.machine
    python = f"{machine.get('python', '?')} (GIL {machine.get('gil', '?')})"
    mode = "quick mode" if run.result.quick else ""
    return markdown.machine_line(
        run.command,
        run.recorded,
        int(machine.get("cpu_count") or 0),
        run.result.background_cores,
        ", ".join(filter(None, [python, mode, f"{run.result.elapsed_s:.0f} s"])),
    )


def render_experiment(path: Path) -> str:
    run = read(path)
    result = run.result
    parts = [_header(run) + ":", "", markdown.table(result.columns, result.rows)]
    for section in result.sections:
        parts += ["", f"*{section.title}*", "", markdown.table(section.columns, section.rows)]
    lines = []
    if result.summary:
        figures = ", ".join(f"{k} = {format_cell(v)}" for k, v in result.summary.items())
        lines.append(f"- measured: {figures}")
    lines += [
        f"- claim as tested: {result.claim}",
        f"- the talk: {result.talk}",
        f"- verdict: **{result.verdict.value}** ({result.reason})",
    ]
    lines += [f"- note: {note}" for note in result.notes]
    return "\n".join([*parts, "", *lines])


def render_summary(directory: Path) -> str:
    """One row per experiment: the claim as tested, the talk's figure, the verdict."""
    runs = [read(path) for path in sorted(directory.glob("*.json"))]
    rows = [
        {
            "experiment": f"`{run.result.name}`",
            "claim as tested": run.result.claim,
            "the talk": run.result.talk,
            "verdict": f"**{run.result.verdict.value}**: {run.result.reason}",
            "others' cores": run.result.background_cores,
        }
        for run in sorted(runs, key=lambda r: _order(r.result.name))
    ]
    columns = ["experiment", "claim as tested", "the talk", "verdict", "others' cores"]
    return markdown.table(columns, rows)


def _order(name: str) -> tuple[int, str]:
    # the talk's order (the registry's); experiments not registered here go last, by name
    from poollab.demo import registry

    names = list(registry.NAMES)
    return (names.index(name) if name in names else len(names), name)
