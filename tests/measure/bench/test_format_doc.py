"""docs/results-format.md documents every field results.json has, and no field it lacks.

Each object's table is compared with the dataclass that writes it; a field whose value is
itself an object (memory, contention, a repeat, ...) must name that object's fields in its row.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest

from poollab.measure.bench.ceilings import References
from poollab.measure.bench.config import RunConfig
from poollab.measure.bench.machine import Machine
from poollab.measure.bench.profiles import Profile
from poollab.measure.bench.results import BenchCell, BenchRun, Publisher

DOC = Path(__file__).parents[3] / "docs" / "results-format.md"
# each object's section, by the start of its heading, and the class that writes it
SECTIONS: dict[str, type] = {
    "## `results.json`": BenchRun,
    "### `machine`": Machine,
    "### `config`": RunConfig,
    "### `profiles`": Profile,
    "### `references`": References,
    "### `publisher`": Publisher,
    "### `cells`": BenchCell,
}
NAME = re.compile(r"`([a-z_0-9]+)`")


def _section(text: str, heading: str) -> str:
    start = text.index("\n" + heading)
    following = re.search(r"\n#{1,3} ", text[start + 1 :])
    return text[start : start + 1 + following.start()] if following else text[start:]


def documented_rows(heading: str) -> dict[str, str]:
    """Each field named in the first column of the section's table, with its row's meaning."""
    rows: dict[str, str] = {}
    for line in _section(DOC.read_text(), heading).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 2 or cells[0] in ("field", "---"):
            continue
        for name in NAME.findall(cells[0]):
            rows[name] = cells[1]
    return rows


def _inner_fields(hint: Any) -> set[str]:
    """The field names of the object a field holds (directly, in a list or as an option).

    Nothing for an object with a section of its own: that section documents its fields.
    """
    if hint in SECTIONS.values():
        return set()
    if typing.get_origin(hint) in (typing.Union, types.UnionType, list):
        return set().union(*(_inner_fields(arg) for arg in typing.get_args(hint)))
    if dataclasses.is_dataclass(hint):
        return {f.name for f in dataclasses.fields(hint)}
    if typing.is_typeddict(hint):
        return set(typing.get_type_hints(hint))
    return set()


@pytest.mark.parametrize("heading", SECTIONS)
def test_every_field_is_documented_and_every_documented_field_exists(heading: str) -> None:
    cls = SECTIONS[heading]
    rows = documented_rows(heading)
    fields = {f.name for f in dataclasses.fields(cls)}
    assert set(rows) - fields == set(), f"documented under {heading} but not a field"
    assert fields - set(rows) == set(), f"fields of {cls.__name__} missing under {heading}"
    hints = typing.get_type_hints(cls)
    for name, meaning in rows.items():
        inner = _inner_fields(hints[name])
        named = set(NAME.findall(meaning))
        assert inner <= named, f"{cls.__name__}.{name}: undocumented {inner - named}"
