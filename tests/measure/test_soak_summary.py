"""The soak's summary for the docs: a row per pool, built from a small constructed report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from poollab.measure import soak_summary
from poollab.measure.claims import summary


def _pool(rss: list[float], uss: list[float], procs: int) -> dict[str, Any]:
    samples = [
        {"t_s": t * 60.0, "rss_mb": r, "uss_mb": u, "procs": procs, "throughput_per_s": 10.0}
        for t, (r, u) in enumerate(zip(rss, uss, strict=True))
    ]
    return {
        "concurrency": 2,
        "counts": {"published": 40, "completed": 39, "failed": 1, "pending": 0, "skipped": 0},
        "runs": {"ran_twice": 0},
        "throughput_per_s": {"mean": 10.0, "min_interval": 9.5, "max_interval": 10.5},
        "rss_mb": {"slope_mb_per_min": 0.5},
        "uss_mb": {"first": uss[0], "last": uss[-1], "slope_mb_per_min": -0.25},
        "samples": samples,
    }


def _report() -> dict[str, Any]:
    return {
        "command": "poollab soak --minutes 4",
        "started": "2026-12-05T04:00:00+0100",
        "minutes": 4.0,
        "rate_per_pool_per_s": 10.0,
        "interval_s": 60.0,
        "job_mix": [{"kind": "cpu", "params": {"n": 20000}}],
        "prefork_flags": [],
        "machine": {"cpus": 2, "python": "3.11.7", "load_avg_at_end": [1.5, 1.0, 0.5]},
        "pools": {
            "prefork": _pool([100.0, 101.0, 102.0, 102.5, 103.0], [50.0, 51, 52, 52, 52.5], 3),
            "solo": _pool([70.0, 70.0, 70.0, 70.0, 70.0], [40.0, 40, 40, 40, 40], 1),
        },
        "verdict": {"ok": True, "reasons": []},
    }


def test_the_table_has_a_row_per_pool_with_the_memory_at_start_1_min_half_and_end() -> None:
    record = soak_summary.build(_report(), busy_cores=0.123)
    (table,) = record.tables
    assert table.columns[8:12] == ["RSS start", "1 min", "2 min", "4 min"]
    assert table.columns[12] == "growth 2→4 min"
    assert [row["pool"] for row in table.rows] == ["prefork", "solo"]
    prefork = table.rows[0]
    assert set(prefork) == set(table.columns)
    assert (prefork["processes"], prefork["sent"], prefork["done"]) == (3, 40, 39)
    assert (prefork["failed"], prefork["pending"]) == (1, 0)
    assert prefork["jobs/s mean (min–max per 60 s)"] == "10.00 (9.5–10.5)"
    assert [prefork[c] for c in table.columns[8:12]] == [100.0, 101.0, 102.0, 103.0]
    assert prefork["growth 2→4 min"] == "+1.00 MB"
    assert prefork["RSS slope, 2nd half"] == "+0.500 MB/min"
    assert prefork["USS start → end"] == "50.0 → 52.5"
    assert prefork["USS slope, 2nd half"] == "-0.250 MB/min"
    assert table.rows[1]["growth 2→4 min"] == "+0.00 MB"


def test_the_summary_records_the_run_not_the_moment_it_was_summarised(tmp_path: Path) -> None:
    record = soak_summary.build(_report(), busy_cores=0.123)
    assert record.command == "poollab soak --minutes 4"
    assert record.recorded == "2026-12-05 03:00 UTC"
    assert (record.cpu_count, record.busy_cores) == (2, 0.12)
    assert record.versions["python"] == "3.11.7" and "celery" in record.versions
    assert any("load average at the end (1, 5, 15 min): 1.5, 1.0, 0.5" in n for n in record.notes)
    assert "verdict: passed" in record.notes


def test_the_cli_summarises_a_report_file_and_takes_its_busy_cores(tmp_path: Path) -> None:
    report = _report()
    report["machine"]["other_cores"] = 0.4
    source = tmp_path / "soak.json"
    source.write_text(json.dumps(report))
    out = tmp_path / "results" / "soak.json"
    assert soak_summary.main([str(source), "--summary", str(out)]) == 0
    written = summary.read(out)
    assert written.busy_cores == 0.4
    assert written.notes[-1].startswith("summarised from the run's report afterwards: `python -m")
    assert soak_summary.main([str(tmp_path / "missing.json"), "--summary", str(out)]) == 2
