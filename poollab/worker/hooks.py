"""The hook layer (:mod:`poollab.hooks.layer`) attached to a Celery worker through its signals.

Loaded by the worker app itself (``poollab.worker.app`` includes it), so every worker of the
lab publishes its figures: ``poollab up``, compose and the bench start workers the same way.
The counters are created at ``worker_init`` (the main process, before prefork forks its
children, so the children's counts land in shared memory); the sampler starts at
``worker_ready`` in the main process only and samples its whole tree, and stops at
``worker_shutdown``.
"""

from __future__ import annotations

from typing import Any

from celery.signals import (
    celeryd_after_setup,
    task_failure,
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


@worker_init.connect  # type: ignore[untyped-decorator]
def _create_hooks(sender: Any = None, **_: Any) -> None:
    global _hooks
    _hooks = ConsumerHooks(get_settings().broker_url)


@task_prerun.connect  # type: ignore[untyped-decorator]
def _job_started(sender: Any = None, **_: Any) -> None:
    if _hooks is not None:
        _hooks.job_started()


@task_success.connect  # type: ignore[untyped-decorator]
def _job_succeeded(sender: Any = None, **_: Any) -> None:
    if _hooks is not None:
        _hooks.job_finished(True)


@task_failure.connect  # type: ignore[untyped-decorator]
def _job_failed(sender: Any = None, **_: Any) -> None:
    if _hooks is not None:
        _hooks.job_finished(False)


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
