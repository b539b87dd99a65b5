"""Rendering the docs' blocks from the committed runs, and checking the docs are up to date."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path

from poollab.measure.claims import blocks, markdown, summary, talk
from poollab.measure.claims.paths import DOCS, RESULTS


class SourceError(ValueError):
    """A block names a source that is missing or outside docs/results/."""


def render_block(block: blocks.Block, root: Path) -> str:
    if block.source.parts[: len(RESULTS.parts)] != RESULTS.parts:
        raise SourceError(
            f"block {block.name!r}: its source {block.source} is not under {RESULTS}/"
        )
    path = root / block.source
    if path.is_dir():
        return talk.render_summary(path)
    if not path.is_file():
        raise SourceError(f"block {block.name!r}: {block.source} does not exist")
    if talk.is_demo_document(json.loads(path.read_text())):
        return talk.render_experiment(path)
    return render_summary(summary.read(path))


def render_summary(record: summary.Summary) -> str:
    parts = [
        markdown.machine_line(record.command, record.recorded, record.cpu_count, record.busy_cores)
        + ":"
    ]
    for table in record.tables:
        if table.title:
            parts += ["", f"*{table.title}*"]
        parts += ["", markdown.table(table.columns, table.rows)]
    if record.notes:
        parts += ["", *(f"- {note}" for note in record.notes)]
    if record.versions:
        versions = ", ".join(f"{k} {v}" for k, v in sorted(record.versions.items()))
        parts += ["", f"Versions: {versions}."]
    return "\n".join(parts)


@dataclass(frozen=True)
class Outcome:
    doc: Path
    old: str
    new: str

    @property
    def changed(self) -> bool:
        return self.old != self.new

    def diff(self) -> str:
        return "".join(
            difflib.unified_diff(
                self.old.splitlines(keepends=True),
                self.new.splitlines(keepends=True),
                f"{self.doc} (committed)",
                f"{self.doc} (rendered from {RESULTS}/)",
            )
        )


def render(root: Path, docs: tuple[Path, ...] = DOCS) -> list[Outcome]:
    """Every doc's text rendered from the data, without writing anything."""
    outcomes = []
    for doc in docs:
        old = (root / doc).read_text()
        new = blocks.rewrite(old, doc, lambda block: render_block(block, root))
        outcomes.append(Outcome(doc, old, new))
    return outcomes
