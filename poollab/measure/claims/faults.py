"""The fault tests' outcome as a summary: which failure each test injected, and whether
every job it counted came through (the counts are the tests' own assertions).

``run faults`` runs the fault modules with pytest and reads its JUnit XML; a test that
passed is a scenario whose counts (nothing lost, no job run twice unless stated) held.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from poollab.demo.result import Row
from poollab.measure.claims import summary

MODULES = ("tests/faults/test_worker_death.py", "tests/faults/test_broker_outage.py")
TIMEOUT_S = 1200.0


def pytest_argv(junit: Path | None = None) -> list[str]:
    argv = [sys.executable, "-m", "pytest", *MODULES, "-q", "-p", "no:cacheprovider"]
    return [*argv, f"--junitxml={junit}"] if junit else argv


def run(root: Path) -> summary.Summary:
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        subprocess.run(pytest_argv(junit), cwd=root, timeout=TIMEOUT_S, check=False)
        rows = outcomes(junit.read_text())
    record = summary.new("faults", "python -m pytest " + " ".join(MODULES) + " -q", busy_cores=None)
    passed = sum(1 for row in rows if row["outcome"] == "passed")
    record.tables.append(summary.Table("", ["module", "test", "outcome", "seconds"], rows))
    record.figures = {"tests": len(rows), "passed": passed}
    return record


def outcomes(junit_xml: str) -> list[Row]:
    """One row per test case: passed, failed, error or skipped, and how long it took."""
    rows: list[Row] = []
    for case in ElementTree.fromstring(junit_xml).iter("testcase"):
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                outcome = "failed" if tag == "failure" else tag
        rows.append(
            {
                "module": case.get("classname", "").rsplit(".", 1)[-1],
                "test": case.get("name", ""),
                "outcome": outcome,
                "seconds": round(float(case.get("time", "0")), 1),
            }
        )
    return rows
