"""Supervision of the consumer's background tasks and the writer's retries, in-process."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from redis.exceptions import (
    BusyLoadingError,
    ConnectionError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
)

from poollab.consumer.broker import Completion
from poollab.consumer.events import EventDispatcher
from poollab.consumer.supervise import supervise, transient
from poollab.consumer.writer import Writer

OOM = "OOM command not allowed when used memory > 'maxmemory'."


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (ConnectionError("Connection refused"), True),
        (OSError("broken pipe"), True),
        # as redis-py raises them: the code is the type, the message has it no more
        (OutOfMemoryError(OOM.removeprefix("OOM ")), True),
        (ReadOnlyError("You can't write against a read only replica."), True),
        (BusyLoadingError("Redis is loading the dataset in memory"), True),
        # a code redis-py does not map: recognised by the message
        (ResponseError("BUSY Redis is busy running a script."), True),
        (ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), False),
        (NoPermissionError("this user has no permissions to run the 'set' command"), False),
        (ValueError("a bug"), False),
    ],
)
def test_transient_or_not(error: Exception, retried: bool) -> None:
    assert transient(error) is retried


async def test_a_transient_failure_is_retried_and_a_lasting_one_is_fatal() -> None:
    attempts: list[int] = []
    fatal: list[tuple[str, BaseException]] = []

    async def task() -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise OutOfMemoryError(OOM)
        raise ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")

    await asyncio.wait_for(
        supervise("task", task, lambda n, e: fatal.append((n, e)), first_s=0.01), 5
    )
    assert len(attempts) == 3
    assert [name for name, _ in fatal] == ["task"]
    assert "WRONGTYPE" in str(fatal[0][1])


async def test_a_one_shot_task_ends_and_a_returning_loop_is_started_again() -> None:
    runs: list[int] = []

    async def once() -> None:
        runs.append(1)

    await asyncio.wait_for(supervise("warm", once, lambda n, e: None, once=True), 5)
    assert runs == [1]

    async def returns() -> None:
        runs.append(2)

    loop = asyncio.create_task(supervise("loop", returns, lambda n, e: None, first_s=0.01))
    while runs.count(2) < 3:
        await asyncio.sleep(0.01)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop


class FakeBroker:
    """Fails the first ``failures`` writes with ``error``, then records what is written."""

    def __init__(self, error: Exception, failures: int) -> None:
        self.error = error
        self.failures = failures
        self.written: list[Completion] = []

    async def write(self, done: Sequence[Completion], events: Sequence[tuple[str, str]]) -> None:
        if self.failures:
            self.failures -= 1
            raise self.error
        self.written.extend(done)


def make_writer(broker: FakeBroker, released: list[int]) -> Writer:
    events = EventDispatcher("asyncio@test", 0, task_events=False)
    return Writer(broker, events, released.append)  # type: ignore[arg-type]


async def test_the_writer_keeps_its_batch_through_oom_and_says_it_is_stalled() -> None:
    broker = FakeBroker(OutOfMemoryError(OOM), failures=3)
    released: list[int] = []
    writer = make_writer(broker, released)
    task = asyncio.create_task(writer.run())
    writer.add(Completion("id-1", "{}", "tag-1"))
    writer.add(Completion("id-2", "{}", "tag-2"))
    while writer.failing_since is None:
        await asyncio.sleep(0.01)
    assert writer.stalled() is not None and "cannot be written" in str(writer.stalled())
    assert released == []  # slots stay taken while the results are not written
    await asyncio.wait_for(writer.flush(), 5)
    assert [c.task_id for c in broker.written] == ["id-1", "id-2"]
    assert sum(released) == 2 and writer.stalled() is None and writer.failed_writes == 3
    task.cancel()


async def test_a_refused_write_ends_the_writer_and_keeps_the_batch_unwritten() -> None:
    broker = FakeBroker(NoPermissionError("no permissions to run the 'set' command"), 1)
    released: list[int] = []
    writer = make_writer(broker, released)
    writer.add(Completion("id-1", "{}", "tag-1"))
    with pytest.raises(NoPermissionError):
        await asyncio.wait_for(writer.run(), 5)
    assert writer.unwritten_tags() == ["tag-1"] and released == []
