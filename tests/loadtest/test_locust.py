"""Locust against the lab: every pool gets load, nothing fails, and what Locust reports is
what the workers ran.

Locust runs as a subprocess (``poollab load``): importing it here would monkey-patch this
test process with gevent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from poollab.launcher.lab import Lab
from poollab.launcher.topology import available_pools
from poollab.measure.load import (
    markdown_steps,
    parse_timespan,
    summarize_locust_csv,
    summarize_steps,
)
from tests.conftest import free_ports

ROOT = Path(__file__).resolve().parents[2]
POOLLAB = str(Path(sys.executable).parent / "poollab")
KINDS = ("io", "cpu")


@pytest.fixture(scope="module")
def loadmix() -> Iterator[Any]:
    """loadtest/loadmix.py, which never imports locust, as Locust finds it (its directory)."""
    sys.path.insert(0, str(ROOT / "loadtest"))
    try:
        import loadmix

        yield loadmix
    finally:
        sys.path.remove(str(ROOT / "loadtest"))


def test_each_user_keeps_to_one_pool_and_users_spread_over_the_pools(loadmix: Any) -> None:
    mix = loadmix.build_mix("prefork,gevent:2", "io,cpu", '{"io": {"ms": 5}}', 10)
    assert mix.jobs[0].params == {"ms": 5}
    assert mix.jobs[1].params == loadmix.DEFAULT_PARAMS["cpu"]
    users = [[job.name for job in mix.for_user(n, limit=4)] for n in range(6)]
    assert [{name.split(":")[0] for name in jobs} for jobs in users] == [
        {"prefork"}, {"gevent"}, {"gevent"}, {"prefork"}, {"gevent"}, {"gevent"},
    ]  # fmt: skip
    assert users[0] == ["prefork:io", "prefork:cpu"] * 2
    assert users[3] == ["prefork:cpu", "prefork:io"] * 2  # the next user starts elsewhere


def test_round_robin_users_take_every_pool_and_kind_in_turn(loadmix: Any) -> None:
    mix = loadmix.build_mix("prefork,gevent:2", "io,cpu", "", 10, assign="round-robin")
    turns = [job.name for job in mix.for_user(3, limit=12)]
    assert Counter(turns) == {"prefork:io": 2, "prefork:cpu": 2, "gevent:io": 4, "gevent:cpu": 4}
    assert turns[0] == "gevent:cpu"


@pytest.mark.parametrize(
    ("pools", "kinds", "params", "message"),
    [
        ("prefork,nope", "io", "", "unknown pool"),
        ("prefork:0", "io", "", "weight"),
        ("prefork", "fly", "", "unknown job kind"),
        ("prefork", "io", "{not json", "not JSON"),
        ("prefork", "io", '{"io": {"ms": -1}}', "params for io"),
        ("prefork", "io", '{"io": {"mss": 1}}', "params for io"),
        ("prefork", "io", '{"cpu": {"n": 5}, "zap": {}}', "unknown kind"),
        ("prefork", "io", "[]", "JSON object"),
    ],
)
def test_a_bad_mix_is_refused_before_anything_is_sent(
    loadmix: Any, pools: str, kinds: str, params: str, message: str
) -> None:
    with pytest.raises(loadmix.MixError, match=message):
        loadmix.build_mix(pools, kinds, params, 10)


def test_the_step_shape_climbs_to_its_top_and_stops(loadmix: Any) -> None:
    users = [loadmix.step_tick(t, 5, 10.0, 12, None) for t in (0, 9.9, 10, 25, 29.9, 30)]
    assert [u[0] if u else None for u in users] == [5, 5, 10, 12, 12, None]
    assert loadmix.step_tick(15, 5, 10.0, 50, run_time_s=12) is None
    assert loadmix.constant_tick(3, 4, 2.0, None) == (4, 2.0)
    assert loadmix.constant_tick(20, 4, 2.0, 20) is None


def test_timespans_read_like_locusts() -> None:
    assert [parse_timespan(t) for t in ("20", "20s", "2m", "1h30m", "1m5s")] == [
        20, 20, 120, 5400, 65,
    ]  # fmt: skip


def test_summary_reads_locusts_csv(tmp_path: Path) -> None:
    stats = tmp_path / "run_stats.csv"
    header = (
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
        "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
        "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
    )
    stats.write_text(
        header + "\n"
        "celery,gevent:io,10,1,52,55.5,50.1,90.2,12,2.5,0.25,52,53,54,55,60,70,80,90,90,90,90\n"
        "http,solo:cpu,0,0,0,0,0,0,0,0,0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A\n"
        ",Aggregated,10,1,52,55.5,50.1,90.2,12,2.5,0.25,52,53,54,55,60,70,80,90,90,90,90\n"
    )
    for path in (stats, tmp_path / "run"):
        rows = summarize_locust_csv(path)
        assert [r["name"] for r in rows] == ["gevent:io", "solo:cpu"]
    first, second = rows
    assert first == {
        "type": "celery", "name": "gevent:io", "pool": "gevent", "kind": "io",
        "requests": 10, "failures": 1, "rps": 2.5, "failures_per_s": 0.25,
        "mean_ms": 55.5, "min_ms": 50.1, "max_ms": 90.2,
        "p50_ms": 52.0, "p95_ms": 70.0, "p99_ms": 90.0,
    }  # fmt: skip
    assert second["requests"] == 0 and second["p95_ms"] is None


def test_steps_give_each_pools_throughput_per_level_and_where_it_stops_growing(
    tmp_path: Path,
) -> None:
    history = tmp_path / "run_stats_history.csv"
    lines = ["Timestamp,User Count,Type,Name,95%,Total Request Count"]
    total = 0
    # 10 jobs/s at 5 users, 20/s at 10, 21/s at 15 (saturated), 30/s at 20; a 1 s blip at 7
    for second, (users, rate) in enumerate([(5, 10)] * 4 + [(7, 0)] + [(10, 20)] * 4
                                           + [(15, 21)] * 4 + [(20, 30)] * 4):  # fmt: skip
        total += rate
        lines.append(f"{1000 + second},{users},celery,gevent:io,{users * 10},{total}")
        lines.append(f"{1000 + second},{users},,Aggregated,N/A,{total}")
    history.write_text("\n".join(lines) + "\n")
    steps = summarize_steps(history)
    assert [(s["users"], round(s["jobs_per_s"]), s["saturated"]) for s in steps] == [
        (5, 10, False), (10, 20, False), (15, 21, True), (20, 30, False),
    ]  # fmt: skip
    assert steps[0]["pool"] == "gevent" and steps[0]["p95_ms"] == 50
    table = markdown_steps(steps)
    assert "| celery | gevent:io | 10.0 | 20.0 | 21.0 * | 30.0 |" in table


def test_load_without_a_lab_says_so(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    result = subprocess.run(
        [POOLLAB, "load", "--host", f"http://127.0.0.1:{port}", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "does not answer" in result.stderr


def test_a_bad_mix_stops_locust_with_the_reason(redis_url: str, tmp_path: Path) -> None:
    # the Celery user needs only a broker: the mix is refused before any job is sent
    result = subprocess.run(
        [
            POOLLAB,
            "load",
            "--user",
            "celery",
            "-t",
            "5s",
            "--pools",
            "prefork,bogus",
            "--out",
            str(tmp_path),
        ],
        env={**os.environ, "POOLLAB_BROKER_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "unknown pool 'bogus'" in result.stderr


def test_twenty_seconds_of_load_reach_every_pool_and_the_counts_match_the_workers(
    running_lab: Lab, tmp_path: Path
) -> None:
    out = tmp_path / "load"
    ids_file = tmp_path / "ids.tsv"
    env = {**running_lab.env, "POOLLAB_LOAD_IDS_FILE": str(ids_file)}
    result = subprocess.run(
        # 10 users: 5 of each class, one on each pool
        [POOLLAB, "load", "-u", "10", "-r", "10", "-t", "20s", "--kinds", ",".join(KINDS),
         "--job-timeout", "20", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr + _tail(out / "locust.log")

    summary = json.loads((out / "load.json").read_text())
    rows = {(row["type"], row["name"]): row for row in summary["rows"]}
    assert (out / "load.md").read_text().count("|") > 20
    assert (out / "locust.html").is_file()
    expected = {(via, f"{pool}:{kind}") for via in ("http", "celery")
                for pool in available_pools() for kind in KINDS}  # fmt: skip
    assert set(rows) == expected
    for key, row in rows.items():
        assert row["requests"] > 0 and row["failures"] == 0, (key, row)

    # every job a user reported, with its id: as many as Locust counted, each one run
    lines = [line.split("\t") for line in ids_file.read_text().splitlines()]
    assert all(state == "ok" for *_, state in lines)
    reported = Counter((via, name) for via, name, _, _ in lines)
    assert reported == {key: row["requests"] for key, row in rows.items()}

    client = redis.Redis.from_url(running_lab.settings.broker_url)
    try:
        metas = client.mget([f"celery-task-meta-{job_id}" for _, _, job_id, _ in lines])
    finally:
        client.close()
    ran: Counter[tuple[str, str]] = Counter()
    for (via, name, job_id, _), raw in zip(lines, metas, strict=True):
        assert raw is not None, f"no result for {via} {name} {job_id}"
        meta = json.loads(raw)
        assert meta["status"] == "SUCCESS", meta
        # the worker that ran it is the pool the job was sent to
        assert meta["result"]["pool"] == name.split(":")[0], meta
        ran[(via, name)] += 1
    celery_reported = sum(row["requests"] for (via, _), row in rows.items() if via == "celery")
    assert sum(n for (via, _), n in ran.items() if via == "celery") == celery_reported
    assert ran == reported


def _tail(path: Path) -> str:
    return path.read_text()[-3000:] if path.exists() else ""
