"""The jobs the experiments run. Top-level functions, so process pools can pickle them."""

from __future__ import annotations

import math
import time


def spin(n: int) -> int:
    """Pure-Python CPU work that holds the GIL for its whole run (no C call releases it)."""
    total = 0
    for i in range(n):
        total += i * i
    return total


def factorial(n: int) -> int:
    return math.factorial(n)


def noop(_: object = None) -> None:
    return None


def seconds_per_spin_iteration(sample: int = 200_000) -> float:
    """Calibrate ``spin`` on this machine, so work sizes can be stated in seconds."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        spin(sample)
        best = min(best, time.perf_counter() - start)
    return best / sample


def iterations_for(seconds: float, per_iteration: float) -> int:
    return max(1, int(seconds / per_iteration))
