from __future__ import annotations

import time

from poollab.demo.budget import Deadline, median, repeat_timed


def test_repeat_stops_at_the_count() -> None:
    assert len(repeat_timed(lambda: None, 5, Deadline(10))) == 5


def test_repeat_stops_at_the_deadline_but_runs_once() -> None:
    times = repeat_timed(lambda: time.sleep(0.02), 1_000, Deadline(0.05))
    assert 1 <= len(times) <= 5
    assert len(repeat_timed(lambda: None, 3, Deadline(0))) == 1


def test_median() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
