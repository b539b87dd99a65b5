"""The resource sampler: what it writes agrees with psutil, and gevent cannot starve it."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import redis

from poollab.hooks.counters import JobCounts
from poollab.hooks.sampler import Sample, Sampler, stream_key
from poollab.measure.samples import read_samples, summarize_window

ALLOCATE_AND_WAIT = "import sys, time; block = bytearray(int(sys.argv[1])); time.sleep(60)"


def _tree_memory(pid: int) -> tuple[int, int]:
    """RSS and USS of a tree read here with psutil alone, independently of the sampler."""
    root = psutil.Process(pid)
    rss = uss = 0
    for proc in (root, *root.children(recursive=True)):
        info = proc.memory_full_info()
        rss += info.rss
        uss += info.uss
    return rss, uss


def _wait_samples(client: redis.Redis, pool: str, since: float, count: int) -> list[Sample]:
    deadline = time.monotonic() + 10.0
    found: list[Sample] = []
    while time.monotonic() < deadline:
        found = read_samples(client, pool, since, time.time())
        if len(found) >= count:
            break
        time.sleep(0.05)
    return found


def test_samples_of_a_process_tree_agree_with_psutil(redis_url: str) -> None:
    # a parent with two children that each hold 40 MB: the sampler must see the whole tree
    script = (
        "import subprocess, sys, time\n"
        f"kids = [subprocess.Popen([sys.executable, '-c', {ALLOCATE_AND_WAIT!r}, "
        "str(40 * 2**20)]) for _ in range(2)]\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    client = redis.Redis.from_url(redis_url)
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 10.0
        while len(psutil.Process(parent.pid).children()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the children's 40 MB are touched once bytearray() returns
        since = time.time()
        sampler = Sampler(redis_url, "tree", "tree@test", 0.1, pid=parent.pid).start()
        samples = _wait_samples(client, "tree", since, 3)
        rss, uss = _tree_memory(parent.pid)
        sampler.stop()
    finally:
        for child in psutil.Process(parent.pid).children(recursive=True):
            child.kill()
        parent.kill()
        parent.wait()
    assert len(samples) >= 3
    last = samples[-1]
    assert last.procs == 3
    assert last.pid == parent.pid and last.node == "tree@test"
    assert abs(last.rss - rss) / rss < 0.1, (last.rss, rss)
    assert abs(last.uss - uss) / uss < 0.1, (last.uss, uss)
    # two children of 40 MB each: the tree holds at least 80 MB of its own
    assert last.uss > 80 * 2**20
    assert samples[1].cpu_cores is not None and samples[0].cpu_cores is None
    assert [s.seq for s in samples] == sorted(s.seq for s in samples)


def test_the_stream_is_capped_and_stop_is_final(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    sampler = Sampler(redis_url, "capped", "capped@test", 0.05, maxlen=5)
    sample = _sample(1.0, 1, 0.0)
    for _ in range(250):
        sampler._write(client, sample)
    # MAXLEN ~ trims whole stream nodes (100 entries each): bounded, cheaply, not exactly 5
    assert client.xlen(stream_key("capped")) <= 105
    sampler.start()
    deadline = time.monotonic() + 10.0
    while sampler.written < 255 and time.monotonic() < deadline:
        time.sleep(0.05)
    sampler.stop()
    written = sampler.written
    assert written >= 255
    time.sleep(0.2)
    assert sampler.written == written


def test_a_cpu_bound_greenlet_does_not_starve_the_sampler_under_gevent(
    redis_url: str, tmp_path: Path
) -> None:
    """Celery's gevent pool patches threading; the sampler must still run during CPU work."""
    script = tmp_path / "busy.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from gevent import monkey
            monkey.patch_all()
            import json, threading, time
            from poollab.hooks.sampler import Sampler
            assert monkey.is_module_patched("threading")
            sampler = Sampler({redis_url!r}, "gevent-test", "g@test", 0.1).start()
            time.sleep(0.3)  # cooperative: gevent's sleep
            began = time.time()
            x = 0
            while time.time() - began < 2.0:  # never yields to the hub
                x += 1
            ended = time.time()
            sampler.stop()
            print(json.dumps({{"began": began, "ended": ended}}))
            """
        )
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    window = json.loads(result.stdout.strip().splitlines()[-1])
    client = redis.Redis.from_url(redis_url)
    during = read_samples(client, "gevent-test", window["began"], window["ended"])
    # about 20 at 0.1 s; a greenlet sampler would write none while the loop holds the hub
    assert len(during) >= 5, len(during)
    assert max(s.cpu_cores or 0.0 for s in during) > 0.3


def _record_in_child(counts: JobCounts) -> None:
    for _ in range(5):
        counts.record(True)
    counts.record(False)


def test_job_counts_made_before_a_fork_see_the_childrens_jobs() -> None:
    counts = JobCounts()
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=_record_in_child, args=(counts,)) for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(10)
    counts.record(True)
    assert (counts.succeeded, counts.failed) == (11, 2)


def _sample(t: float, rss: int, cpu_s: float, pid: int = 1) -> Sample:
    return Sample(t, "p", "n", pid, 1, rss, rss // 2, cpu_s, None, None, None, 0)


def test_a_window_takes_memory_inside_it_and_cpu_between_its_brackets() -> None:
    mb = 2**20
    idle = [_sample(0.0, 100 * mb, 0.0), _sample(0.5, 102 * mb, 0.1)]
    around = [
        _sample(9.5, 500 * mb, 1.0),  # before the window: brackets the CPU, not the memory
        _sample(10.2, 120 * mb, 1.5),
        _sample(10.8, 140 * mb, 2.0),
        _sample(11.5, 130 * mb, 3.0),  # the first one after the window counts
        _sample(12.0, 900 * mb, 3.5),
    ]
    res = summarize_window(idle, around, start=10.0, end=11.0)
    assert res.rss_mb == {"idle": 101.0, "peak": 140.0, "mean": 130.0}
    assert res.uss_mb["peak"] == 70.0
    assert res.cpu_cores == pytest.approx((3.0 - 1.0) / (11.5 - 9.5), abs=1e-3)
    assert res.samples == 3
    assert summarize_window(idle, [], 10.0, 11.0).samples == 0


def test_samples_round_trip_through_json() -> None:
    sample = _sample(1.25, 10, 0.5)
    assert Sample.from_json(sample.to_json()) == sample
    assert Sample.from_json(json.dumps({**json.loads(sample.to_json()), "new": 1})) == sample
    assert os.getpid() > 0


def test_each_sample_carries_the_loop_lag_read_then() -> None:
    from poollab.measure.proctree import ProcessTree

    readings = iter([0.25, None])
    sampler = Sampler("redis://127.0.0.1:1/0", "asyncio", "a@test", loop_lag=lambda: next(readings))
    tree = ProcessTree(os.getpid())
    first = sampler.sample_once(tree, None, 0)
    second = sampler.sample_once(tree, first, 1)
    assert (first.loop_lag_s, second.loop_lag_s) == (0.25, None)
    assert Sample.from_json(first.to_json()).loop_lag_s == 0.25
    # Celery's pools run no monitor: their samples say nothing about a loop
    assert (
        Sampler("redis://127.0.0.1:1/0", "solo", "s@test").sample_once(tree, None, 0).loop_lag_s
        is None
    )
