"""A run's small summary, as committed under docs/results/: what was run, where, and its tables.

Every measurement other than the demos writes one of these (the demos write their own
``poollab demo --json`` document). Raw samples stay out: a summary holds the tables the docs
show and the few headline figures their prose refers to.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from poollab.demo.result import Cell, Row
from poollab.measure.jsonrecord import JsonRecord


@dataclass
class Table(JsonRecord):
    title: str
    columns: list[str]
    rows: list[Row]


@dataclass
class Summary(JsonRecord):
    name: str
    # the command that produced the run, as typed from the repository's root
    command: str
    recorded: str = ""
    cpu_count: int = 0
    # average cores other programs kept busy during the run (None: not measured)
    busy_cores: float | None = None
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # the headline figures prose may quote, by name
    figures: dict[str, Cell] = field(default_factory=dict)
    # the versions of what was measured, as installed when it ran
    versions: dict[str, str] = field(default_factory=dict)


def today() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def new(name: str, command: str, busy_cores: float | None) -> Summary:
    return Summary(
        name=name,
        command=command,
        recorded=today(),
        cpu_count=os.cpu_count() or 1,
        busy_cores=None if busy_cores is None else round(busy_cores, 2),
    )


def write(summary: Summary, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary.to_json(), indent=1) + "\n")


def read(path: Path) -> Summary:
    return Summary.from_json(json.loads(path.read_text()))
