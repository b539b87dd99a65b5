"""The hook layer (:mod:`poollab.hooks.layer`) attached to a Celery worker through its signals.

Loaded by the worker app itself (``poollab.worker.app`` includes it), so every worker of the
lab publishes its figures: ``poollab up``, compose and the bench start workers the same way.
The counters are created at ``worker_init`` (the main process, before prefork forks its
children, so the children's counts land in shared memory); the sampler starts at
``worker_ready`` in the main process only and samples its whole tree, and stops at
``worker_shutdown``.

The run journal (tests): ``start`` at ``task_prerun``; ``stored`` at ``task_success`` /
``task_failure``, which Celery sends after it stored the result. The ack comes later: with
``acks_late`` it is sent by ``Request.on_success``/``on_failure`` once the pool hands the
outcome back (the worker's main process for prefork, after the child's ``task_postrun``; the
same thread or greenlet for threads, gevent and solo). So the test-only pause after the
store sits in ``task_postrun``, which runs after the store and before the ack in every pool.
"""

from __future__ import annotations

import time
from typing import Any

from celery import states
from celery.signals import (
    celeryd_after_setup,
    task_failure,
    task_postrun,
    task_prerun,
    task_success,
    worker_init,
    worker_ready,
    worker_shutdown,
)

from poollab.hooks.layer import ConsumerHooks
from poollab.settings import get_settings

_POOL_BY_MODULE = {
    "celery.concurrency.prefork": "prefork",
    "celery.concurrency.thread": "threads",
    "celery.concurrency.gevent": "gevent",
    "celery.concurrency.eventlet": "eventlet",
    "celery.concurrency.solo": "solo",
}

# the pool this worker runs; set once the worker knows it (inherited by prefork children)
pool_name = "unknown"
_hooks: ConsumerHooks | None = None
_concurrency = 0


def pool_of(pool_cls: Any) -> str:
    module = getattr(pool_cls, "__module__", "") if pool_cls is not None else ""
    return _POOL_BY_MODULE.get(module, module or "unknown")


@celeryd_after_setup.connect  # type: ignore[untyped-decorator]
def _remember_pool(sender: str, instance: Any, **_: Any) -> None:
    global pool_name, _concurrency
    pool_name = pool_of(getattr(instance, "pool_cls", None))
    _concurrency = int(getattr(instance, "concurrency", 0) or 0)
    if _hooks is not None:
        _hooks.pool = pool_name  # before prefork forks its children: they journal it


@worker_init.connect  # type: ignore[untyped-decorator]
def _create_hooks(sender: Any = None, **_: Any) -> None:
    global _hooks
    _hooks = ConsumerHooks(get_settings().broker_url, pool=pool_name)
    if _hooks.pause_after_store_s > 0:
        # only then: Celery skips sending task_postrun when nothing is connected to it
        task_postrun.connect(_pause_after_store, weak=False)


@task_prerun.connect  # type: ignore[untyped-decorator]
def _job_started(sender: Any = None, task_id: str = "", **_: Any) -> None:
    if _hooks is not None:
        _hooks.job_started(task_id)


@task_success.connect  # type: ignore[untyped-decorator]
def _job_succeeded(sender: Any = None, **_: Any) -> None:
    if _hooks is not None:
        _hooks.job_finished(True)
        if _hooks.journal is not None:
            # task_success carries no id: the request is still the task's current one
            _hooks.job_stored(str(sender.request.id))


@task_failure.connect  # type: ignore[untyped-decorator]
def _job_failed(sender: Any = None, task_id: str = "", **_: Any) -> None:
    if _hooks is not None:
        _hooks.job_finished(False)
        _hooks.job_stored(task_id)


def _pause_after_store(sender: Any = None, state: str | None = None, **_: Any) -> None:
    """Test-only (POOLLAB_TEST_PAUSE_AFTER_STORE_S): hold the job between its stored result
    and its ack, so that a test can kill the worker there."""
    if _hooks is not None and _hooks.pause_after_store_s > 0 and state in states.READY_STATES:
        time.sleep(_hooks.pause_after_store_s)


@worker_ready.connect  # type: ignore[untyped-decorator]
def _start_sampling(sender: Any = None, **_: Any) -> None:
    if _hooks is None:
        return
    node = str(getattr(sender, "hostname", "") or "unknown")
    # the lab's workers consume the queue named after their pool (-Q POOL)
    _hooks.start(pool_name, node, _concurrency, {"queue": pool_name})


@worker_shutdown.connect  # type: ignore[untyped-decorator]
def _stop_sampling(sender: Any = None, **_: Any) -> None:
    if _hooks is not None:
        _hooks.stop()
