from __future__ import annotations

import time

from poollab.demo.background import BackgroundLoad, own_cpu_seconds
from poollab.measure.cpu import machine_busy_seconds


def test_own_cpu_is_not_counted_as_background() -> None:
    with BackgroundLoad() as meter:
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            pass
    # this process spun one core the whole time; none of it may show up as "others"
    assert 0 <= meter.other_cores < meter.cpu_count


def test_counters_only_grow() -> None:
    busy, own = machine_busy_seconds(), own_cpu_seconds()
    sum(range(100_000))
    assert machine_busy_seconds() >= busy and own_cpu_seconds() >= own
