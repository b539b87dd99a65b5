"""The structured outcome of one experiment: what was claimed, what was measured, the verdict."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from poollab.measure.jsonrecord import JsonRecord

Cell = str | int | float | bool | None
Row = dict[str, Cell]


class Verdict(enum.StrEnum):
    HELD = "held"
    NOT_HELD = "did not hold"
    SKIPPED = "skipped"
    # the claim failed, but other programs took so much CPU that the test was not fair
    INCONCLUSIVE = "inconclusive"
    # the experiment itself broke: reported rather than hidden, so `all` can go on
    ERROR = "error"


@dataclass
class Section:
    """A second table of the same experiment, when its figures do not share the main columns."""

    title: str
    columns: list[str]
    rows: list[Row]


@dataclass
class DemoResult(JsonRecord):
    """One experiment's outcome; ``to_json`` / ``from_json`` as in ``poollab demo --json``.

    A figure that is not finite (a ratio over a zero time) is null in JSON, as in results.json.
    """

    name: str
    claim: str
    # what the talk reported, so the measured figures can be read against it
    talk: str
    columns: list[str]
    rows: list[Row]
    verdict: Verdict
    reason: str
    summary: dict[str, Cell] = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    chart: str | None = None
    quick: bool = False
    elapsed_s: float = 0.0
    # average cores other programs kept busy during the run (None: not measured)
    background_cores: float | None = None

    def column(self, key: str) -> list[Cell]:
        return [row.get(key) for row in self.rows]


def skipped(name: str, claim: str, talk: str, status: str) -> DemoResult:
    """A result for an experiment this interpreter cannot run; the status says what it needs."""
    return DemoResult(
        name=name,
        claim=claim,
        talk=talk,
        columns=["status"],
        rows=[{"status": status}],
        verdict=Verdict.SKIPPED,
        reason=status.removeprefix("skipped: "),
    )


def verdict_from(failures: list[str], held: Callable[[], str]) -> tuple[Verdict, str]:
    """Held, for the reason ``held()`` gives, when nothing failed; else every failure.

    ``held`` is called only then: its figures may not exist when the claim failed.
    """
    if failures:
        return Verdict.NOT_HELD, "; ".join(failures)
    return Verdict.HELD, held()


def ratio(numerator: float, denominator: float) -> float:
    # a zero denominator only happens when a timer could not resolve the run
    return numerator / denominator if denominator > 0 else float("inf")
