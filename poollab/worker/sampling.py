"""Resource sampling and job counting for Celery workers, wired to Celery's signals.

Imported by :mod:`poollab.worker.tasks` (or given to a worker with ``-I``): the counters are
created at ``worker_init`` (the main process, before prefork forks its children, so the
children's counts land in shared memory), the sampler starts at ``worker_ready`` in the main
process only and samples its whole tree, and stops at ``worker_shutdown``.
``POOLLAB_SAMPLE_INTERVAL_S`` sets the interval (default 0.5 s, at most 1 s; 0 turns it off).
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import task_failure, task_success, worker_init, worker_ready, worker_shutdown
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from poollab.hooks.counters import JobCounts
from poollab.hooks.sampler import DEFAULT_INTERVAL_S, MAX_INTERVAL_S, Sampler
from poollab.settings import get_settings

log = logging.getLogger(__name__)


class SamplingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POOLLAB_", extra="ignore")

    sample_interval_s: float = Field(DEFAULT_INTERVAL_S, ge=0.0, le=MAX_INTERVAL_S)


_counts: JobCounts | None = None
_sampler: Sampler | None = None


@worker_init.connect  # type: ignore[untyped-decorator]
def _create_counts(sender: Any = None, **_: Any) -> None:
    global _counts
    _counts = JobCounts()


@task_success.connect  # type: ignore[untyped-decorator]
def _count_success(sender: Any = None, **_: Any) -> None:
    if _counts is not None:
        _counts.record(True)


@task_failure.connect  # type: ignore[untyped-decorator]
def _count_failure(sender: Any = None, **_: Any) -> None:
    if _counts is not None:
        _counts.record(False)


def _pool_name() -> str:
    # read at worker_ready, when tasks.py has learnt the pool (importing it at the top
    # would be circular: tasks.py imports this module)
    from poollab.worker import tasks

    return tasks.pool_name


@worker_ready.connect  # type: ignore[untyped-decorator]
def _start_sampler(sender: Any = None, **_: Any) -> None:
    global _sampler
    interval = SamplingSettings().sample_interval_s
    if interval <= 0 or _sampler is not None:
        return
    node = str(getattr(sender, "hostname", "") or "unknown")
    _sampler = Sampler(
        get_settings().broker_url, _pool_name(), node, interval, counts=_counts
    ).start()
    log.info("sampling the worker's process tree every %.2fs", interval)


@worker_shutdown.connect  # type: ignore[untyped-decorator]
def _stop_sampler(sender: Any = None, **_: Any) -> None:
    global _sampler
    if _sampler is not None:
        _sampler.stop()
        _sampler = None
