"""The loop-lag monitor: a blocked loop reports a lag as long as the block, and the real
consumer publishes its lag in its samples."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import redis
from celery import Celery

from poollab import jobs
from poollab.consumer.looplag import LoopLag
from poollab.hooks.sampler import Sample
from poollab.measure.samples import read_samples
from poollab.services.collector.metrics import CollectorMetrics

from .conftest import ConsumerFactory

BLOCK_S = 0.3


def test_a_loop_blocked_by_time_sleep_reports_at_least_the_block() -> None:
    lag = LoopLag(interval_s=0.01)

    async def main() -> tuple[float | None, float | None]:
        monitor = asyncio.create_task(lag.run())
        await asyncio.sleep(0.1)
        quiet = lag.take_max()
        time.sleep(BLOCK_S)  # blocks the loop: the monitor cannot wake meanwhile
        await asyncio.sleep(0.05)
        blocked = lag.take_max()
        monitor.cancel()
        return quiet, blocked

    quiet, blocked = asyncio.run(main())
    assert quiet is not None and blocked is not None
    # the pending 10 ms wake-up was due at most 10 ms after the block began
    assert blocked >= BLOCK_S - 0.01 - 0.005, blocked
    assert quiet < blocked
    assert lag.wakeups >= 5


def test_a_stuck_loop_is_seen_while_it_is_stuck() -> None:
    lag = LoopLag(interval_s=0.01)
    seen: list[float | None] = []

    def read_later() -> None:
        time.sleep(0.2)
        seen.append(lag.take_max())

    async def main() -> None:
        monitor = asyncio.create_task(lag.run())
        await asyncio.sleep(0.05)
        reader = threading.Thread(target=read_later)
        reader.start()
        time.sleep(0.4)  # the reader looks while the loop is still blocked
        reader.join()
        monitor.cancel()

    asyncio.run(main())
    assert seen and seen[0] is not None and seen[0] >= 0.1, seen


def test_no_lag_before_the_monitor_runs_and_none_is_negative() -> None:
    lag = LoopLag()
    assert lag.take_max() is None
    lag.record(-0.001)  # a wake-up a hair early is no lag
    assert lag.take_max() == 0.0
    assert lag.take_max() is None
    with pytest.raises(ValueError):
        LoopLag(interval_s=0)


def _lags(broker_url: str, since: float, until: float) -> list[Sample]:
    client = redis.Redis.from_url(broker_url)
    try:
        return read_samples(client, "asyncio", since, until)
    finally:
        client.close()


@pytest.mark.parametrize("executor", ["inline", "thread"])
def test_the_real_consumer_reports_its_loop_lag(
    executor: str,
    start_consumer: ConsumerFactory,
    consumer_env: dict[str, str],
    client: Celery,
) -> None:
    env = {**consumer_env, "POOLLAB_SAMPLE_INTERVAL_S": "0.2"}
    consumer = start_consumer(env, "-c", "4", "--cpu-executor", executor)
    since = time.time()
    # about 0.3-0.6 s of pure Python per job on this machine: inline, each one blocks the loop
    results = [
        client.send_task(
            "poollab.cpu",
            kwargs={"n": 2_000_000},
            queue="asyncio",
            headers={jobs.SENT_HEADER: time.time()},
        )
        for _ in range(4)
    ]
    values = [result.get(timeout=60) for result in results]
    run_s = min(v["timings"]["finished"] - v["timings"]["started"] for v in values)
    time.sleep(0.6)  # the next samples carry the last job's lag
    samples = _lags(consumer.settings.broker_url, since, time.time())
    lags = [s.loop_lag_s for s in samples if s.loop_lag_s is not None]
    assert lags, [s for s in samples]
    worst = max(lags)
    # the collector turns the consumer's own samples into its Prometheus gauge
    metrics = CollectorMetrics()
    for sample in samples:
        metrics.observe_sample(sample)
    labels = {"pool": "asyncio", "node": samples[-1].node}
    assert metrics.registry.get_sample_value("poollab_event_loop_lag_seconds", labels) == (
        samples[-1].loop_lag_s
    )
    if executor == "inline":
        # the loop could not wake while a job ran: at least one job's run time late
        assert worst >= 0.9 * run_s, (lags, run_s)
    else:
        # in a thread the loop still wakes, if late by a GIL switch interval or a few (more
        # when other programs take the CPU); never after a whole job, as inline
        assert worst < run_s, (lags, run_s)
