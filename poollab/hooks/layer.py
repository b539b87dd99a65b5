"""The hooks every consumer calls, so that each one publishes the same figures the same way.

One object per consumer (a Celery worker of any pool, or the asyncio consumer):

* ``job_started(task_id)`` / ``job_finished(ok)``: counters in shared memory (prefork's
  children count into their parent's), read by the sampler; no write per job.
* ``job_stored(task_id)``: the job's result is written, its message not yet acknowledged.
  With ``POOLLAB_RUN_JOURNAL`` set (tests), starts and stores are appended to that file
  (:mod:`poollab.hooks.journal`); off, they cost one comparison. ``pause_after_store_s``
  (``POOLLAB_TEST_PAUSE_AFTER_STORE_S``, test-only, 0 by default) is how long the consumer
  waits there, so a test can kill it between the store and the ack.
* the sampler (:mod:`poollab.hooks.sampler`): the consumer's whole process tree (RSS, PSS,
  USS, CPU, processes) and the counts, one sample per interval on ``poollab:samples:<pool>``,
  which the collector serves as metrics and the bench reads for its cells.
* the liveness key (:mod:`poollab.hooks.liveness`), refreshed with each sample. A consumer
  with an event loop of its own calls ``heartbeat()`` from that loop, and the key is
  refreshed only while those beats keep coming: a stalled loop is not reported alive.
* the loop lag (:mod:`poollab.consumer.looplag`): a consumer with an event loop of its own
  runs ``loop_lag.run()`` on it, and each sample carries the largest lag since the previous
  one (``loop_lag_s``); for the others it stays None.

Celery's pools attach it through signals (:mod:`poollab.worker.hooks`, loaded by the worker
app); the asyncio consumer calls it directly. ``poollab up``, compose and the bench all get
their figures through this one path.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import redis
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from poollab.consumer.looplag import LoopLag
from poollab.hooks.counters import JobCounts
from poollab.hooks.journal import RunJournal
from poollab.hooks.liveness import ALIVE_TTL_S, alive_key, alive_value
from poollab.hooks.sampler import DEFAULT_INTERVAL_S, MAX_INTERVAL_S, AliveKey, Sampler

log = logging.getLogger(__name__)

# how often the liveness key is refreshed when resource sampling is turned off
LIVENESS_ONLY_INTERVAL_S = 1.0


class HookSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POOLLAB_", extra="ignore")

    # seconds between resource samples (at most 1 s); 0 turns sampling off (liveness stays)
    sample_interval_s: float = Field(DEFAULT_INTERVAL_S, ge=0.0, le=MAX_INTERVAL_S)
    # test-only: the file every job start and result store is appended to; unset, none is
    run_journal: Path | None = None
    # test-only: seconds a consumer waits after storing a result, before acknowledging its
    # message, so that a test can kill it in that window (0: no wait)
    test_pause_after_store_s: float = Field(0.0, ge=0.0)


class ConsumerHooks:
    """Counters, sampler and liveness of one consumer.

    Create it before the consumer forks any child (the counters live in shared memory);
    ``start()`` in the process whose tree is to be sampled, ``stop()`` when it shuts down.
    """

    def __init__(
        self,
        broker_url: str,
        *,
        interval_s: float | None = None,
        beats: bool = False,
        pool: str = "",
    ) -> None:
        settings = HookSettings()
        self.broker_url = broker_url
        self.interval_s = settings.sample_interval_s if interval_s is None else interval_s
        self.counts = JobCounts()
        # the pool named in the run journal's lines (start() sets it too)
        self.pool = pool
        self.journal = RunJournal(settings.run_journal) if settings.run_journal else None
        self.pause_after_store_s = settings.test_pause_after_store_s
        self.sampler: Sampler | None = None
        self.node = ""
        self._info: dict[str, Any] = {}
        # None until the first beat: a consumer that beats is not alive before its loop runs
        self._beats = beats
        self._last_beat: float | None = None
        # measures only if the consumer runs it on its loop (an asyncio task)
        self.loop_lag = LoopLag()

    # --- per job: called where the job runs (a prefork child, a thread, a greenlet, a task) ---

    def job_started(self, task_id: str) -> None:
        self.counts.start()
        if self.journal is not None:
            self.journal.write("start", task_id, self.pool)

    def job_finished(self, ok: bool) -> None:
        self.counts.record(ok)

    def job_stored(self, task_id: str) -> None:
        """The job's result is written; its message is acknowledged after this returns (or,
        where one write does both, was acknowledged with it)."""
        if self.journal is not None:
            self.journal.write("stored", task_id, self.pool)

    # --- the consumer's life --------------------------------------------------------------

    def heartbeat(self) -> None:
        """The consumer's own loop is running (for consumers created with ``beats=True``)."""
        self._last_beat = time.monotonic()

    def _fresh(self) -> bool:
        if not self._beats:
            return True
        return self._last_beat is not None and time.monotonic() - self._last_beat < ALIVE_TTL_S

    def start(self, pool: str, node: str, concurrency: int, info: dict[str, Any]) -> None:
        """Start sampling this process's tree and keeping the liveness key fresh."""
        if self.sampler is not None:
            return
        self.node = node
        self.pool = pool
        self._info = {"pool": pool, "concurrency": concurrency, "pid": os.getpid(), **info}
        value = alive_value(self._info)
        sampling = self.interval_s > 0
        self.sampler = Sampler(
            self.broker_url,
            pool,
            node,
            self.interval_s if sampling else LIVENESS_ONLY_INTERVAL_S,
            counts=self.counts,
            concurrency=concurrency,
            alive=AliveKey(alive_key(node), lambda: value, ALIVE_TTL_S, self._fresh),
            loop_lag=self.loop_lag.take_max,
            write_samples=sampling,
        ).start()
        if sampling:
            log.info("%s: sampling its process tree every %.2fs", node, self.interval_s)

    def stop(self) -> None:
        """Stop sampling and take the liveness key away: a clean stop is not a death."""
        if self.sampler is None:
            return
        self.sampler.stop()
        self.sampler = None
        client = redis.Redis.from_url(self.broker_url, socket_timeout=2.0)
        try:
            client.delete(alive_key(self.node))
        except (redis.RedisError, OSError) as exc:
            log.debug("could not delete the liveness key: %s (it expires)", exc)
        finally:
            client.close()
