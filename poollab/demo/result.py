"""The structured outcome of one experiment: what was claimed, what was measured, the verdict."""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass, field
from typing import Any

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
class DemoResult:
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

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["verdict"] = self.verdict.value
        cleaned: dict[str, Any] = _finite(data)
        return cleaned

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


def ratio(numerator: float, denominator: float) -> float:
    # a zero denominator only happens when a timer could not resolve the run
    return numerator / denominator if denominator > 0 else float("inf")


def _finite(value: Any) -> Any:
    """The same data with inf and nan as None: JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
