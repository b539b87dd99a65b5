"""CPU of a consumer's main process apart from its children's, over one cell's window.

The hook layer's samples sum the whole tree, which hides where the CPU went: prefork's main
process takes each message, hands it to a child over a pipe and reads the result back, and
on a 2-core machine that work competes with its two children for the same cores. The bench
reads the consumer's processes from /proc itself (they are its own children), at the start
and the end of the window.
"""

from __future__ import annotations

import math

import psutil

from poollab.measure.bench.results import NO_CPU_PER_JOB, CpuPerJob


def _own_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def _reaped_seconds(proc: psutil.Process) -> float:
    # children that exited and were waited for: their CPU is added to the parent's counters
    times = proc.cpu_times()
    return times.children_user + times.children_system


class CpuSplitMeter:
    """Main process and descendants' CPU seconds between ``__init__`` and ``stop()``."""

    def __init__(self, root_pid: int) -> None:
        self._pid = root_pid
        self._start = self._read()
        self._end: tuple[float, float, dict[int, float]] | None = None

    def _read(self) -> tuple[float, float, dict[int, float]]:
        """(main's own CPU, CPU of descendants reaped so far, each live descendant's CPU)."""
        try:
            root = psutil.Process(self._pid)
            main, reaped = _own_seconds(root), _reaped_seconds(root)
            kids = root.children(recursive=True)
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            return math.nan, math.nan, {}
        live: dict[int, float] = {}
        for kid in kids:
            try:
                live[kid.pid] = _own_seconds(kid) + _reaped_seconds(kid)
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
        return main, reaped, live

    def stop(self) -> None:
        self._end = self._read()

    def per_job(self, jobs: int) -> CpuPerJob:
        end = self._end or self._read()
        main0, reaped0, live0 = self._start
        main1, reaped1, live1 = end
        if jobs <= 0 or not (math.isfinite(main0) and math.isfinite(main1)):
            return NO_CPU_PER_JOB
        # a child alive at both ends counts its difference, one born meanwhile all of its
        # CPU; one that exited meanwhile shows in the reaped counters (its CPU before the
        # window, in live0, is taken off again)
        children = sum(cpu - live0.get(pid, 0.0) for pid, cpu in live1.items())
        gone = sum(cpu for pid, cpu in live0.items() if pid not in live1)
        children += max(reaped1 - reaped0 - gone, 0.0)
        return CpuPerJob(
            main_ms=round((main1 - main0) / jobs * 1000, 3),
            children_ms=round(max(children, 0.0) / jobs * 1000, 3),
            children=len(set(live0) | set(live1)),
        )
