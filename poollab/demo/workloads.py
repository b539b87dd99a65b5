"""The jobs the experiments run. Top-level functions, so process pools can pickle them."""

from __future__ import annotations

import math

# spin() and its calibration live in the child that other interpreters run as one
# standard-library-only file (sub-interpreters, free-threading); every experiment uses them
from poollab.demo.parallel_child import seconds_per_spin_iteration as seconds_per_spin_iteration
from poollab.demo.parallel_child import spin as spin


def factorial(n: int) -> int:
    return math.factorial(n)


def noop(_: object = None) -> None:
    return None


def iterations_for(seconds: float, per_iteration: float) -> int:
    return max(1, int(seconds / per_iteration))
