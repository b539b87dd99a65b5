"""CPU meters: how busy the whole machine is, whoever keeps it busy.

A figure taken while other programs use the cores is not a fair test, so the bench and the
demos both read the machine's busy CPU time and subtract their own (:mod:`.proctree`).
"""

from __future__ import annotations

import time

import psutil


def machine_busy_seconds() -> float:
    """CPU seconds every core spent busy since boot, summed over the cores."""
    times = psutil.cpu_times()
    # steal is CPU the hypervisor gave to other guests: lost to us just the same
    busy = sum(times) - times.idle - getattr(times, "iowait", 0.0)
    # the kernel counts in ticks (10 ms); rounding there drops the float noise of the
    # subtraction, which could otherwise make two readings go backwards by 1e-12
    return round(float(busy), 2)


def machine_busy_cores(seconds: float = 0.5) -> float:
    """Cores busy machine-wide over a short window."""
    before = machine_busy_seconds()
    began = time.monotonic()
    time.sleep(seconds)
    return (machine_busy_seconds() - before) / max(time.monotonic() - began, 1e-9)
