"""The event-loop lag series: set from the asyncio consumer's samples, absent for the pools
that have no loop of their own, gone with a consumer that stopped sampling."""

from __future__ import annotations

import time

from poollab.hooks.sampler import Sample
from poollab.services.collector.metrics import STALE_AFTER_S, CollectorMetrics

LAG = "poollab_event_loop_lag_seconds"


def _sample(pool: str, node: str, t: float, loop_lag_s: float | None) -> Sample:
    return Sample(t, pool, node, 1, 1, 100, 50, 1.0, 0.5, 10, 0, 0, loop_lag_s=loop_lag_s)


def test_loop_lag_is_a_gauge_per_consumer_of_the_latest_sample() -> None:
    metrics = CollectorMetrics()
    now = time.time()
    metrics.observe_sample(_sample("asyncio", "asyncio@h", now, 0.42))
    metrics.observe_sample(_sample("asyncio", "asyncio@h", now, 0.003))
    metrics.observe_sample(_sample("gevent", "gevent@h", now, None))
    labels = {"pool": "asyncio", "node": "asyncio@h"}
    # a gauge of the recent worst, not a maximum for ever: the loop recovered
    assert metrics.registry.get_sample_value(LAG, labels) == 0.003
    assert metrics.registry.get_sample_value(LAG, {"pool": "gevent", "node": "gevent@h"}) is None
    assert metrics.forget_stale(now + STALE_AFTER_S + 1) == ["asyncio@h", "gevent@h"]
    assert metrics.registry.get_sample_value(LAG, labels) is None


def test_loop_lag_is_in_the_exposition_with_its_help() -> None:
    from prometheus_client import generate_latest

    metrics = CollectorMetrics()
    metrics.observe_sample(_sample("asyncio", "asyncio@h", time.time(), 1.5))
    text = generate_latest(metrics.registry).decode()
    assert "# TYPE poollab_event_loop_lag_seconds gauge" in text
    assert 'poollab_event_loop_lag_seconds{node="asyncio@h",pool="asyncio"} 1.5' in text
