from __future__ import annotations

import asyncio
import time

import pytest

from poollab.backoff import RETRY_MAX_S, Backoff, sleep_or_stop


def test_delays_double_from_first_up_to_the_cap() -> None:
    backoff = Backoff(first=0.1, cap=1.0)
    assert [backoff.next() for _ in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_reset_starts_again_from_first() -> None:
    backoff = Backoff(first=0.05)
    for _ in range(4):
        backoff.next()
    backoff.reset()
    assert backoff.next() == 0.05


def test_the_lab_wide_cap_is_the_default() -> None:
    backoff = Backoff()
    delays = [backoff.next() for _ in range(20)]
    assert max(delays) == RETRY_MAX_S
    assert delays[0] == 0.1


@pytest.mark.parametrize(("first", "cap"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_nonsense_bounds_are_refused(first: float, cap: float) -> None:
    with pytest.raises(ValueError, match="first"):
        Backoff(first=first, cap=cap)


async def test_sleep_or_stop_sleeps_the_whole_time_without_a_stop() -> None:
    started = time.monotonic()
    assert await sleep_or_stop(0.05) is False
    assert time.monotonic() - started >= 0.045


async def test_sleep_or_stop_sleeps_when_the_stop_is_not_set() -> None:
    stop = asyncio.Event()
    started = time.monotonic()
    assert await sleep_or_stop(0.05, stop) is False
    assert time.monotonic() - started >= 0.045


async def test_sleep_or_stop_returns_as_soon_as_the_stop_is_set() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.02, stop.set)
    started = time.monotonic()
    assert await sleep_or_stop(10.0, stop) is True
    assert time.monotonic() - started < 1.0
