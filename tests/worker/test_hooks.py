"""Every consumer of a plain lab publishes its figures through the hook layer, unasked."""

from __future__ import annotations

import time

import redis
from celery import Celery

from poollab.celery_config import make_client
from poollab.hooks.liveness import alive_key
from poollab.hooks.sampler import Sample
from poollab.launcher.lab import Lab
from poollab.measure.samples import read_samples
from poollab.producer.publish import publish, wait_for


def _newest(client: redis.Redis, pool: str, node: str, since: float) -> Sample | None:
    found = read_samples(client, pool, since, time.time() + 1.0, node)
    return found[-1] if found else None


def test_every_pool_samples_its_tree_and_counts_its_jobs_without_being_asked(
    running_lab: Lab,
) -> None:
    # the lab's workers are started exactly as `poollab up` starts them: no -I, no bench
    assert not any("-I" in run.service.argv for run in running_lab.running.values())
    client: Celery = make_client("tests-hooks", running_lab.settings)
    nodes = {run.service.pool: run.service.target for run in running_lab.running.values()}
    pools = [pool for pool in nodes if pool]
    assert sorted(pools) == ["asyncio", "gevent", "prefork", "solo", "threads"]
    before = time.time()
    ids = {pool: publish(client, pool, "cpu", {"n": 2_000}, count=5) for pool in pools}
    metas = wait_for(client, [i for batch in ids.values() for i in batch], timeout=120)
    assert all(meta["status"] == "SUCCESS" for meta in metas.values())
    finished = max(meta["result"]["timings"]["finished"] for meta in metas.values())

    broker = redis.Redis.from_url(running_lab.settings.broker_url)
    deadline = time.monotonic() + 20.0
    newest: dict[str, Sample | None] = {}
    while time.monotonic() < deadline:
        newest = {pool: _newest(broker, pool, nodes[pool], before) for pool in pools}
        if all(s is not None and s.t > finished for s in newest.values()):
            break
        time.sleep(0.2)
    for pool, sample in newest.items():
        assert sample is not None, f"{pool} wrote no sample"
        assert sample.t > finished, pool
        assert sample.pool == pool and sample.node == nodes[pool]
        # a process tree holds memory: a zero would mean nothing was read
        assert sample.rss > 10 * 2**20 and 0 < sample.uss <= sample.pss <= sample.rss, pool
        assert sample.procs >= 1 and sample.concurrency is not None and sample.concurrency >= 1
        # counted where the jobs ran (prefork: in its children, through shared memory)
        assert sample.started is not None and sample.started >= 5, (pool, sample)
        assert sample.succeeded is not None and sample.succeeded >= 5, (pool, sample)
        assert sample.failed == 0, (pool, sample)
        assert broker.ttl(alive_key(nodes[pool])) > 0, f"{pool} keeps no liveness key"
    assert newest["prefork"] is not None and newest["prefork"].procs >= 3  # parent + 2 children
    broker.close()
