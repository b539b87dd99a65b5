"""A consumer samples its own process tree and writes one JSON sample per interval to Redis.

``Sampler(redis_url, pool, node, interval_s).start()`` … ``.stop()``. Each sample is one
``XADD poollab:samples:<pool> MAXLEN ~ 10000`` (about 80 minutes at 0.5 s), sent in one
round trip with the consumer's liveness key (:mod:`poollab.hooks.liveness`): the cost is
one write per interval whatever the job rate. Sampling from inside the consumer works the
same on a laptop and in a container, where a launcher cannot see the consumer's processes.
It is started by the hook layer (:mod:`poollab.hooks.layer`), never on its own.

Under Celery's gevent pool ``threading`` is monkey-patched before anything is imported, so
a ``threading.Thread`` would be a greenlet: it would sample only when the running job
yields, and a CPU-bound job would starve it (no sample while it runs). The sampler
therefore starts a real OS thread through gevent's saved originals; its Redis socket,
created in that thread, is served by a gevent hub of that thread's own. Under every other
pool it is an ordinary daemon thread.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import redis

from poollab.measure.proctree import ProcessTree

log = logging.getLogger(__name__)

STREAM_PREFIX = "poollab:samples:"
STREAM_MAXLEN = 10_000
DEFAULT_INTERVAL_S = 0.5
MAX_INTERVAL_S = 1.0
# the field of each stream entry that holds the sample's JSON
FIELD = "json"


def stream_key(pool: str) -> str:
    return f"{STREAM_PREFIX}{pool}"


class Counts(Protocol):
    """Jobs so far in the sampled consumer (see :class:`~.counters.JobCounts`)."""

    @property
    def started(self) -> int: ...

    @property
    def succeeded(self) -> int: ...

    @property
    def failed(self) -> int: ...


@dataclass(frozen=True)
class Sample:
    t: float
    pool: str
    node: str
    pid: int
    procs: int
    rss: int
    uss: int
    cpu_s: float
    # cores used since the previous sample (CPU seconds / wall seconds); None for the first
    cpu_cores: float | None
    succeeded: int | None
    failed: int | None
    seq: int
    pss: int = 0
    started: int | None = None
    # the consumer's -c: what its memory is divided by for a figure per unit of concurrency
    concurrency: int | None = None
    # the largest event-loop lag since the previous sample (consumers with a loop of their
    # own: see poollab.consumer.looplag); None for Celery's pools
    loop_lag_s: float | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Sample:
        data: dict[str, Any] = json.loads(raw)
        known: dict[str, Any] = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _os_thread_primitives() -> tuple[Callable[..., Any], Callable[[float], None]]:
    """``start_new_thread`` and ``sleep`` that are the OS's, even under gevent's patching."""
    monkey = sys.modules.get("gevent.monkey")
    # gevent is imported only if the process already did: importing it here would add its
    # memory to every other consumer's figures
    if monkey is not None and monkey.is_module_patched("threading"):
        return monkey.get_original("_thread", "start_new_thread"), monkey.get_original(
            "time", "sleep"
        )
    import _thread

    return _thread.start_new_thread, time.sleep


@dataclass(frozen=True)
class AliveKey:
    """The liveness key the sampler refreshes with each sample, while ``fresh()`` holds."""

    key: str
    value: Callable[[], str]
    ttl_s: int
    fresh: Callable[[], bool]


class Sampler:
    """Samples the tree below ``pid`` (default: this process) every ``interval_s`` seconds.

    With ``write_samples=False`` it only keeps the liveness key fresh (sampling turned off).
    """

    def __init__(
        self,
        redis_url: str,
        pool: str,
        node: str,
        interval_s: float = DEFAULT_INTERVAL_S,
        *,
        pid: int | None = None,
        counts: Counts | None = None,
        concurrency: int | None = None,
        alive: AliveKey | None = None,
        loop_lag: Callable[[], float | None] | None = None,
        write_samples: bool = True,
        maxlen: int = STREAM_MAXLEN,
    ) -> None:
        if not 0 < interval_s <= MAX_INTERVAL_S:
            raise ValueError(f"interval_s must be in (0, {MAX_INTERVAL_S}]")
        self.redis_url = redis_url
        self.pool = pool
        self.node = node
        self.interval_s = interval_s
        self.pid = pid or os.getpid()
        self.counts = counts
        self.concurrency = concurrency
        self.alive = alive
        self.loop_lag = loop_lag
        self.write_samples = write_samples
        self.maxlen = maxlen
        self.written = 0
        self._stop = False
        self._running = False
        self._sleep: Callable[[float], None] = time.sleep

    def start(self) -> Sampler:
        if self._running:
            return self
        start_new_thread, self._sleep = _os_thread_primitives()
        self._stop = False
        self._running = True
        start_new_thread(self._run, ())
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        """Ask the thread to end and wait (bounded) until it has: no write after this."""
        self._stop = True
        deadline = time.monotonic() + timeout_s
        while self._running and time.monotonic() < deadline:
            self._sleep(0.01)

    def sample_once(self, tree: ProcessTree, previous: Sample | None, seq: int) -> Sample:
        usage = tree.usage()
        now = time.time()
        cores = None
        if previous is not None and now > previous.t:
            cores = round(max(usage.cpu_s - previous.cpu_s, 0.0) / (now - previous.t), 4)
        lag = self.loop_lag() if self.loop_lag is not None else None
        return Sample(
            t=round(now, 4),
            pool=self.pool,
            node=self.node,
            pid=self.pid,
            procs=usage.procs,
            rss=usage.rss,
            uss=usage.uss,
            pss=usage.pss,
            cpu_s=round(usage.cpu_s, 4),
            cpu_cores=cores,
            succeeded=self.counts.succeeded if self.counts is not None else None,
            failed=self.counts.failed if self.counts is not None else None,
            started=self.counts.started if self.counts is not None else None,
            concurrency=self.concurrency,
            loop_lag_s=round(lag, 6) if lag is not None else None,
            seq=seq,
        )

    def _run(self) -> None:
        # created in this thread: under gevent its socket belongs to this thread's hub
        client = redis.Redis.from_url(
            self.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0
        )
        try:
            tree = ProcessTree(self.pid)
            previous: Sample | None = None
            seq = 0
            # runs until stop() or until the sampled process is gone
            while not self._stop and tree.root.is_running():
                began = time.monotonic()
                sample = None
                if self.write_samples:
                    sample = previous = self.sample_once(tree, previous, seq)
                    seq += 1
                self._write(client, sample)
                self._wait(self.interval_s - (time.monotonic() - began))
        except Exception:  # the sampler must never take its consumer down
            log.exception("resource sampler for %s stopped", self.node)
        finally:
            client.close()
            self._running = False

    def _write(self, client: redis.Redis, sample: Sample | None) -> None:
        try:
            pipe = client.pipeline(transaction=False)
            if sample is not None:
                pipe.xadd(
                    stream_key(self.pool),
                    {FIELD: sample.to_json()},
                    maxlen=self.maxlen,
                    approximate=True,
                )
            if self.alive is not None and self.alive.fresh():
                pipe.set(self.alive.key, self.alive.value(), ex=self.alive.ttl_s)
            pipe.execute()
            if sample is not None:
                self.written += 1
        except (redis.RedisError, OSError) as exc:
            # a broker that is down loses samples, not the consumer; the next one retries
            log.debug("writing a resource sample failed: %s", exc)

    def _wait(self, seconds: float) -> None:
        # in slices, so that stop() returns within one slice
        deadline = time.monotonic() + max(seconds, 0.0)
        while not self._stop and time.monotonic() < deadline:
            self._sleep(min(0.05, max(deadline - time.monotonic(), 0.0)))
