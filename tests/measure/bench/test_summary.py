"""A run's cells as a docs/results summary: one row per cell, every column filled or null."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from poollab.measure.bench.ceilings import Pathology
from poollab.measure.bench.results import Contention, CpuPerJob, write_results
from poollab.measure.bench.summary import COLUMNS, bench_summary, main
from tests.measure.bench.factory import make_cell, make_run


def test_each_cell_is_a_row_with_its_flag_and_its_processes_cpu(tmp_path: Path) -> None:
    stalled = make_cell(
        pool="gevent", concurrency=2, workload="cpu", throughput_per_s=1.0,
        cpu_ms_per_job=CpuPerJob(20.0, 0.0, 0), contention=Contention(1.0, 0.1, 0.2, 0.7),
        steady_s=0.5, short="steady state 0.50 s < cell_s 3 s",
        pathology=Pathology("cores", "stall", "no job ran 99% of the time"),
    )  # fmt: skip
    solo = make_cell(contention=Contention(1.0, 0.1, 0.8, 0.1))
    stalled.throughput_spread = 0.374
    run = make_run([solo, stalled])
    found = bench_summary("gevent-stall", "poollab bench ...", [run])
    (table,) = found.tables
    assert table.columns == COLUMNS
    assert [set(row) for row in table.rows] == [set(COLUMNS)] * 2
    row = table.rows[1]
    assert row["flag"] == "⚠ stall, short" and row["CPU ms/job main"] == 20.0
    assert row["jobs/s"] == 1.0 and row["other cores"] == 0.7
    assert row["repeats' spread"] == "37%"
    # not measured: null, never a made-up figure
    assert table.rows[0]["× solo"] is None and table.rows[0]["CPU ms/job main"] is None
    assert table.rows[0]["repeats' spread"] is None
    assert found.busy_cores == 0.4 and found.command == "poollab bench ..."

    results = tmp_path / "results.json"
    write_results(results, run)
    out = tmp_path / "summary.json"
    assert main([str(out), "gevent-stall", str(results), "--command", "poollab bench x"]) == 0
    assert json.loads(out.read_text())["tables"][0]["rows"][1]["flag"] == "⚠ stall, short"


def test_a_file_that_is_not_a_run_is_refused_with_its_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "other.json"
    bad.write_text("{}")
    assert main([str(tmp_path / "s.json"), "x", str(bad), "--command", "c"]) == 2
    assert "other.json" in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()
