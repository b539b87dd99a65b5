"""The job catalogue as Celery tasks named ``poollab.<kind>``.

Each task validates its keyword arguments, runs the blocking variant of its job and
returns :func:`poollab.jobs.envelope`: the value plus the timings, pool, host and pid.
"""

from __future__ import annotations

import time
from typing import Any

from celery import Task
from celery.signals import celeryd_after_setup

from poollab import jobs
from poollab.settings import get_settings
from poollab.worker.app import app
from poollab.worker.http import http_get

_POOL_BY_MODULE = {
    "celery.concurrency.prefork": "prefork",
    "celery.concurrency.thread": "threads",
    "celery.concurrency.gevent": "gevent",
    "celery.concurrency.eventlet": "eventlet",
    "celery.concurrency.solo": "solo",
}
# the pool this worker runs; set once the worker knows it (inherited by prefork children)
pool_name = "unknown"


@celeryd_after_setup.connect  # type: ignore[untyped-decorator]
def _remember_pool(sender: str, instance: Any, **_: Any) -> None:
    global pool_name
    pool_cls = getattr(instance, "pool_cls", None)
    module = getattr(pool_cls, "__module__", "") if pool_cls is not None else ""
    pool_name = _POOL_BY_MODULE.get(module, module or "unknown")


_context = jobs.BlockingContext(upstream_url=get_settings().upstream_url, http_get=http_get)


def _register(kind: jobs.JobKind) -> Task:  # type: ignore[type-arg]
    @app.task(name=kind.task_name, bind=True)  # type: ignore[untyped-decorator]
    def run_job(self: Task, **kwargs: Any) -> dict[str, Any]:  # type: ignore[type-arg]
        started = time.time()
        sent = getattr(self.request, jobs.SENT_HEADER, None)
        params = kind.validate(kwargs)
        value = kind.run(_context, params)
        return jobs.envelope(value, pool_name, sent, started)

    return run_job  # type: ignore[no-any-return]


TASKS: dict[str, Task] = {name: _register(kind) for name, kind in jobs.CATALOGUE.items()}  # type: ignore[type-arg]
