"""Locust against the lab: every pool gets load, nothing fails, and what Locust reports is
what the workers ran. (``poollab load``'s own code is tested in tests/measure/test_load.py.)

Locust runs as a subprocess (``poollab load``): importing it here would monkey-patch this
test process with gevent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from poollab.launcher.lab import Lab
from poollab.settings import ALL_POOLS

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
                for pool in ALL_POOLS for kind in KINDS}  # fmt: skip
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
