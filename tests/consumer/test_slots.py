"""Bounded concurrency: slots free up only when released, and a stop wakes the waiter."""

from __future__ import annotations

import asyncio

import pytest

from poollab.consumer.config import restore_interval
from poollab.consumer.slots import Slots


async def test_a_full_pool_waits_until_a_slot_is_released() -> None:
    slots = Slots(2)
    slots.take(2)
    waiter = asyncio.create_task(slots.wait_free())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    slots.release()
    await asyncio.wait_for(waiter, 1)
    assert slots.free == 1


async def test_interrupt_wakes_a_waiter_without_freeing_a_slot() -> None:
    slots = Slots(1)
    slots.take(1)
    waiter = asyncio.create_task(slots.wait_free())
    await asyncio.sleep(0.01)
    slots.interrupt()
    await asyncio.wait_for(waiter, 1)
    assert slots.free == 0


def test_slots_cannot_be_overdrawn() -> None:
    slots = Slots(2)
    with pytest.raises(RuntimeError):
        slots.take(3)
    with pytest.raises(RuntimeError):
        slots.release()
    with pytest.raises(ValueError):
        Slots(0)


@pytest.mark.parametrize(("timeout", "interval"), [(1, 0.5), (3, 1.0), (300, 10.0), (3600, 10.0)])
def test_restore_sweeps_run_well_inside_the_visibility_timeout(
    timeout: int, interval: float
) -> None:
    assert restore_interval(timeout) == interval
