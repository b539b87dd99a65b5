"""The durability run's summary for the docs, from constructed figures (no server)."""

from __future__ import annotations

from poollab.measure.durability import MODES, build_summary

KEYS = ("post count=100", "post count=1", "post count=1 x8", "submit")


def test_a_row_per_mode_with_jobs_per_s_and_the_share_of_everysec() -> None:
    best = {mode: dict.fromkeys(KEYS, 1000.0 / (n + 1)) for n, mode in enumerate(MODES)}
    record = build_summary(
        "python -m poollab.measure.durability --jobs 30",
        "valkey 9.1.2",
        list(MODES),
        best,
        clients=8,
        jobs=30,
        rounds=3,
        busy_cores=0.25,
    )
    (table,) = record.tables
    assert table.columns == ["mode", "POST count=100", "POST count=1", "POST count=1 ×8", "submit"]
    assert [row["mode"] for row in table.rows] == [mode.name for mode in MODES]
    assert table.rows[0]["POST count=1 ×8"] == "1,000 (100%)"
    assert table.rows[1]["submit"] == "500 (50%)"
    assert table.rows[3]["POST count=100"] == "250 (25%)"
    assert "valkey 9.1.2" in table.title and "best of 3 rounds" in table.title
    assert record.versions["server"] == "valkey 9.1.2" and "kombu" in record.versions
    assert (record.busy_cores, record.notes) == (0.25, [])


def test_an_old_server_runs_two_modes_and_the_summary_says_which_were_not_run() -> None:
    modes = [mode for mode in MODES if not mode.waitaof_ms]
    best = {mode: dict.fromkeys(KEYS, 100.0) for mode in modes}
    record = build_summary("cmd", "redis 7.0.15", modes, best, 8, 30, 3, None)
    assert len(record.tables[0].rows) == 2
    assert record.busy_cores is None
    assert (
        "WAITAOF" in record.notes[0] and "appendfsync always + WAITAOF 1000 ms" in record.notes[0]
    )
