"""CPU seconds used by this process and its children: how many cores a run really kept busy."""

from __future__ import annotations

import psutil


def tree_cpu_seconds() -> float:
    """User + system CPU seconds of this process and its live children."""
    me = psutil.Process()
    total = _cpu(me)
    for child in me.children(recursive=True):
        try:
            total += _cpu(child)
        except psutil.Error:
            continue  # a child that ended between listing and reading
    return total


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)
