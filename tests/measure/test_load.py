"""``poollab load`` (poollab/measure/load.py) and its ``--compare`` (poollab/measure/compare.py).

The user-count rule and the summary's reading of Locust's CSV need no lab; the comparison
runs against the tests' real lab (workers, asyncio consumer, Redis of their own). Locust
itself runs only as a subprocess: importing it here would monkey-patch this process.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from poollab.cli import CliError, build_parser
from poollab.launcher.lab import Lab
from poollab.measure.compare import CompareSpec, Published, publish_paced
from poollab.measure.load import (
    check_user_count,
    find_locustfile,
    load_mixer,
    markdown_steps,
    markdown_table,
    parse_timespan,
    resolve_plan,
    summarize_locust_csv,
    summarize_steps,
    table_columns,
)
from tests.conftest import free_ports

POOLLAB = str(Path(sys.executable).parent / "poollab")


@pytest.fixture
def no_load_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The POOLLAB_LOAD_* variables unset, so the defaults are the ones under test."""
    for name in list(os.environ):
        if name.startswith("POOLLAB_LOAD_"):
            monkeypatch.delenv(name)
    yield


def _args(*argv: str) -> argparse.Namespace:
    return build_parser(["load"]).parse_args(["load", *argv])


def _plan(*argv: str) -> Any:
    return resolve_plan(_args(*argv), load_mixer(find_locustfile(None)))


# --- users: every pool gets the same users of every class, or the count is refused -------


@pytest.mark.usefixtures("no_load_env")
def test_a_user_count_that_leaves_pools_out_is_refused_with_the_smallest_valid_one() -> None:
    # the user's case: 5 pools, 2 classes, 6 users covered 3 pools
    with pytest.raises(CliError) as refused:
        _plan("-u", "6")
    message = str(refused.value)
    assert "--users 6" in message
    assert "smallest valid --users is 10" in message
    assert "5 pool shares" in message and "2 user classes" in message
    # between two multiples: one more user for some pools, so refused too, nearest named
    with pytest.raises(CliError, match="nearest above 15 is 20"):
        _plan("-u", "15")
    assert _plan("-u", "20").pool_users(20) == dict.fromkeys(
        ("prefork", "threads", "gevent", "solo", "asyncio"), 2
    )


@pytest.mark.usefixtures("no_load_env")
def test_weights_count_as_shares_and_the_default_is_the_smallest_valid_count() -> None:
    plan = _plan("--pools", "prefork,gevent:3", "--user", "celery")
    assert (plan.shares, plan.unit, plan.users) == (4, 4, 4)
    assert plan.pool_users(8) == {"prefork": 2, "gevent": 6}
    with pytest.raises(CliError, match="smallest valid --users is 8"):
        _plan("--pools", "prefork,gevent:3", "-u", "6")
    # a round-robin user goes through every pool: only the classes need covering
    plan = _plan("--pools", "prefork,gevent:3", "--assign", "round-robin", "-u", "2")
    assert plan.unit == 2 and plan.pool_users(2) == {"prefork": 1, "gevent": 1}


@pytest.mark.usefixtures("no_load_env")
def test_the_step_shape_checks_its_step_and_its_top() -> None:
    plan = _plan("--shape", "step", "--pools", "solo,threads")
    assert (plan.step_users, plan.step_max_users) == (4, 20)
    with pytest.raises(CliError, match=r"--step-users 5 .* smallest valid --step-users is 4"):
        _plan("--shape", "step", "--pools", "solo,threads", "--step-users", "5")
    with pytest.raises(CliError, match=r"--step-max-users 10 .* nearest above 10 is 12"):
        _plan("--shape", "step", "--pools", "solo,threads", "--step-max-users", "10")
    # -u plays no part in the step shape, so it is not held to the rule
    assert _plan("--shape", "step", "--pools", "solo", "-u", "3").step_users == 2


@pytest.mark.usefixtures("no_load_env")
def test_the_rule_also_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POOLLAB_LOAD_POOLS", "solo,threads,gevent")
    with pytest.raises(CliError, match="smallest valid --users is 6"):
        _plan("-u", "4")
    monkeypatch.setenv("POOLLAB_LOAD_SHAPE", "step")
    monkeypatch.setenv("POOLLAB_LOAD_STEP_USERS", "4")
    with pytest.raises(CliError, match="--step-users 4"):
        _plan()


@pytest.mark.usefixtures("no_load_env")
def test_check_user_count_accepts_exactly_the_multiples() -> None:
    plan = _plan("--pools", "solo,threads,gevent", "--user", "both")
    for count in (6, 12, 60):
        check_user_count("--users", count, plan)
    for count in (0, 1, 5, 7, 13):
        with pytest.raises(CliError):
            check_user_count("--users", count, plan)


def test_a_user_count_that_leaves_pools_out_exits_2_before_anything_runs(tmp_path: Path) -> None:
    (port,) = free_ports(1)  # no producer there: the count is refused before it is asked
    env = {k: v for k, v in os.environ.items() if not k.startswith("POOLLAB_LOAD_")}
    for argv, message in (
        (["-u", "6"], "smallest valid --users is 10"),
        (["--shape", "step", "--step-users", "5"], "smallest valid --step-users is 10"),
    ):
        result = subprocess.run(
            [POOLLAB, "load", *argv, "--host", f"http://127.0.0.1:{port}", "--out", str(tmp_path)],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert message in result.stderr
        assert not (tmp_path / "load.json").exists()


# --- the summary says whose rate its jobs/s is --------------------------------------------


def test_the_jobs_per_s_column_names_its_closed_loop() -> None:
    rows = [
        {"type": "celery", "name": "solo:io", "pool": "solo", "users": 2, "rps": 3.0},
        {"type": "celery", "name": "gevent:io", "pool": "gevent", "users": 2, "rps": 9.0},
    ]
    summary = {"shape": "constant"}
    assert table_columns(rows, summary)[5][1] == "jobs/s per 2 users"
    assert table_columns(rows, {"shape": "step"})[5][1] == "jobs/s per ≤2 users"
    rows[1]["users"] = 6
    assert table_columns(rows, summary)[5][1] == "jobs/s per row's users"
    table = markdown_table(
        rows,
        {
            "users": 8, "shape": "constant", "run_time_s": 5, "host": "h",
            "user_classes": ["CeleryJobUser"], "users_per_pool": {"solo": 2, "gevent": 6},
            "files": {"stats": "locust_stats.csv"},
        },
    )  # fmt: skip
    assert "Users of each class on each pool (pool assignment): solo 2, gevent 6" in table
    assert "closed loop" in table and "not what the pool can do" in table
    assert "| celery | solo:io | 2 |" in table


# --- Locust's files read back ---------------------------------------------------------------


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


def test_load_without_a_lab_says_so(redis_url: str, tmp_path: Path) -> None:
    (port,) = free_ports(1)
    argv = [POOLLAB, "load", "--host", f"http://127.0.0.1:{port}", "--out", str(tmp_path)]
    # no broker given and no lab running here: refused before anything is sent
    env = {k: v for k, v in os.environ.items() if k != "POOLLAB_BROKER_URL"}
    result = subprocess.run(
        argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )  # fmt: skip
    assert result.returncode == 2
    assert "no broker" in result.stderr
    # a broker, but no producer answering
    env["POOLLAB_BROKER_URL"] = redis_url
    result = subprocess.run(
        argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )  # fmt: skip
    assert result.returncode == 2
    assert "does not answer" in result.stderr


def test_a_bad_mix_is_refused_before_locust_starts(redis_url: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [POOLLAB, "load", "--user", "celery", "-t", "5s", "--pools", "prefork,bogus",
         "--out", str(tmp_path)],
        env={**os.environ, "POOLLAB_BROKER_URL": redis_url},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "unknown pool 'bogus'" in result.stderr
    assert not (tmp_path / "locust.log").exists()


# --- --compare: the same offered rate for every pool ---------------------------------------


def test_the_schedule_offers_every_pool_the_same_rate_and_takes_the_kinds_in_turn() -> None:
    spec = CompareSpec(("solo", "threads"), ("io", "cpu"), {}, rate=4.0, duration_s=2.0,
                       drain_s=5.0)  # fmt: skip
    schedule = list(spec.schedule())
    assert len(schedule) == spec.total == 16
    for pool in spec.pools:
        times = [t for t, p, _ in schedule if p == pool]
        assert len(times) == 8
        assert all(abs((b - a) - 0.25) < 1e-9 for a, b in itertools.pairwise(times))
        assert [k for _, p, k in schedule if p == pool][:4] == ["io", "cpu", "io", "cpu"]
    assert schedule[1][0] == pytest.approx(0.125)  # the pools interleave
    assert max(t for t, _, _ in schedule) < spec.duration_s


class _FakeApp:
    """Counts sends; its producer context is a no-op."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def producer_or_acquire(self) -> Any:
        import contextlib

        return contextlib.nullcontext(None)

    def send_task(self, name: str, **kwargs: Any) -> None:
        self.sent.append({"name": name, **kwargs})


def test_the_publisher_never_waits_for_results_and_stops_at_its_deadline() -> None:
    spec = CompareSpec(("solo",), ("noop",), {"noop": {"x": 1}}, rate=10.0, duration_s=10.0,
                       drain_s=1.0)  # fmt: skip
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    def slow_clock() -> float:
        # each look at the clock finds the publisher 0.5 s later: it falls ever further behind
        now[0] += 0.5
        return now[0]

    app = _FakeApp()
    published: Published = publish_paced(app, spec, clock=slow_clock, sleep=sleep)
    # bounded: it stops a MAX_LAG_S (10 s) past the schedule's 10 s, far short of the 100
    assert 0 < len(app.sent) < spec.total
    assert published.stopped is not None and "behind its schedule" in published.stopped
    assert all(m["queue"] == "solo" and m["name"] == "poollab.noop" for m in app.sent)

    now[0] = 0.0
    app = _FakeApp()
    on_time = publish_paced(app, spec, clock=lambda: now[0], sleep=sleep)
    assert len(app.sent) == spec.total and on_time.stopped is None
    assert max(on_time.lags_s) == 0.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-u", "10"], "-u/--users: only for a Locust run"),
        (["--user", "celery"], "--user: only for a Locust run"),
        (["--pools", "solo,gevent:2"], "no weights"),
        (["--pools", "solo", "--rate", "100", "-t", "60s", "--max-jobs", "1000"], "--max-jobs"),
        (["--rate", "0"], "--rate must be"),
        (["-t", "2h"], "at most 600 s"),
    ],
)
def test_compare_refuses_what_it_cannot_run(
    argv: list[str], message: str, tmp_path: Path, redis_url: str
) -> None:
    result = subprocess.run(
        [POOLLAB, "load", "--compare", *argv, "--out", str(tmp_path)],
        env={**os.environ, "POOLLAB_BROKER_URL": redis_url},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr


def test_compare_options_without_compare_and_a_remote_broker_are_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [POOLLAB, "load", "--rate", "5", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "--rate: only with --compare" in result.stderr
    # refused before any connection: 192.0.2.1 is TEST-NET, nothing answers there
    result = subprocess.run(
        [POOLLAB, "load", "--compare", "--pools", "solo", "--out", str(tmp_path)],
        env={**os.environ, "POOLLAB_BROKER_URL": "redis://192.0.2.1:6379/0"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "loopback broker only" in result.stderr


def test_a_short_compare_run_offers_each_pool_the_same_rate_and_reports_each(
    running_lab: Lab, tmp_path: Path
) -> None:
    out = tmp_path / "compare"
    rate, seconds, pools = 5.0, 4, ("solo", "threads", "asyncio")
    result = subprocess.run(
        [POOLLAB, "load", "--compare", "--pools", ",".join(pools), "--kinds", "io,noop",
         "--params", '{"io": {"ms": 10}}', "--rate", f"{rate:g}", "-t", f"{seconds}s",
         "--job-timeout", "60", "--out", str(out)],
        env=running_lab.env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("load-compare.json", "load-compare.md", "load-compare.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "load-compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "load-compare.json").read_text())
    assert report["sent_jobs"] == report["planned_jobs"] == int(rate * seconds) * len(pools)
    rows = {row["pool"]: row for row in report["rows"]}
    assert set(rows) == set(pools)
    table = (out / "load-compare.md").read_text()
    for pool, row in rows.items():
        assert f"| {pool} |" in table and pool in result.stdout
        # the same offer for every pool, all of it sent
        assert row["offered_per_s"] == rate and row["sent"] == int(rate * seconds)
        # a pool this far below its capacity keeps up: every job done, nothing left over
        assert row["completed"] == row["sent"] and row["failed"] == 0, row
        assert row["unfinished"] == 0 and row["withdrawn"] == 0
        # never more than was offered; short of it only by the jobs still running when the
        # window closed (those sent in its last max-latency seconds), however slow the machine
        assert row["achieved_per_s"] <= rate * 1.1
        late = rate * (row["latency_ms"]["max"] / 1000 + 1 / rate) + 1
        assert row["completed_in_window"] >= row["sent"] - late, row
        latency = row["latency_ms"]
        assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"], row
        assert not row["latency_lower_bound"]
        assert set(row["kinds"]) == {"io", "noop"}
        # each consumer samples its own process tree: memory and CPU are filled in
        resources = row["resources"]
        assert resources["nodes"] >= 1 and resources["samples"] >= 1, (pool, resources)
        for memory in (resources["uss_mb"], resources["rss_mb"]):
            assert 5 < memory["mean"] <= memory["peak"] < 10_000, (pool, resources)
        assert resources["uss_mb"]["peak"] <= resources["rss_mb"]["peak"]
        assert resources["cpu_cores"] is not None and resources["cpu_cores"] >= 0
