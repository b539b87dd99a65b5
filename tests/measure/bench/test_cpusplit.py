"""The main process's CPU apart from its children's, read from real processes."""

from __future__ import annotations

import subprocess
import sys

from poollab.measure.bench.cpusplit import CpuSplitMeter

# a parent that sleeps while its two children (one that exits, one that stays) burn CPU
FAMILY = """
import multiprocessing as mp, sys, time

def burn(seconds, done=None):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    if done is not None:
        done.set()
        time.sleep(60)

if __name__ == "__main__":
    sys.stdout.write("ready\\n"); sys.stdout.flush()
    sys.stdin.readline()
    ctx = mp.get_context("fork")
    short = ctx.Process(target=burn, args=(0.2,)); short.start(); short.join()
    done = ctx.Event()
    stays = ctx.Process(target=burn, args=(0.3, done), daemon=True); stays.start()
    done.wait()
    sys.stdout.write("burnt\\n"); sys.stdout.flush()
    sys.stdin.readline()
"""


def test_children_and_the_main_process_are_counted_apart() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", FAMILY], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline() == "ready\n"
        meter = CpuSplitMeter(proc.pid)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        # the first child has exited, the second burnt its CPU and sleeps
        assert proc.stdout.readline() == "burnt\n"
        meter.stop()
        split = meter.per_job(10)
        proc.stdin.write("done\n")
        proc.stdin.flush()
        proc.wait(timeout=10)
    finally:
        proc.kill()
    # 0.2 s (reaped) + 0.3 s (alive) over 10 jobs: ~50 ms of children's CPU per job, a
    # machine busy elsewhere only stretches the wall time, not these CPU times
    assert 40 <= split.children_ms <= 80, split
    # the parent only forked and waited
    assert split.main_ms < split.children_ms / 3, split
    assert split.children >= 1
