"""The job catalogue as Celery tasks named ``poollab.<kind>``, and the user's own jobs.

Each task validates its keyword arguments, runs the blocking variant of its job and
returns :func:`poollab.jobs.envelope`: the value plus the timings, pool, host and pid.
Time limits and retries come from the settings, per kind (see docs/faults.md).

The user's jobs (``POOLLAB_JOBS``, :mod:`poollab.userjobs`) are tasks named
``poollab.user.<module>.<function>`` with the time limits of the kind ``user``; an
``async def`` one runs with ``asyncio.run`` per job, in whichever pool runs it. Their
envelope also carries the RSS of the process that ran the job, before and after it, so that a
job that leaks shows it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import urllib3
from celery import Task
from celery.exceptions import InvalidTaskError
from celery.worker.request import Request

from poollab import jobs, userjobs
from poollab.settings import Settings, get_settings
from poollab.worker import hooks
from poollab.worker.app import app
from poollab.worker.http import http_get

log = logging.getLogger(__name__)

_context = jobs.BlockingContext(upstream_url=get_settings().upstream_url, http_get=http_get)

# what a retried kind retries on: the upstream's error answers and failed requests (refused,
# reset, timed out); never a job's refusal of its input (JobError) nor a time limit
RETRY_ON: tuple[type[BaseException], ...] = (jobs.UpstreamError, urllib3.exceptions.HTTPError)


class CheckedRequest(Request):  # type: ignore[misc]
    """A task message Celery cannot take apart is refused and logged, not fatal to the worker.

    Celery builds the request from the message in the worker's main process, for every
    pool. A message of a known task whose body is not ``[args, kwargs, embed]`` (or whose
    headers lack the id) raises there, outside the handlers for invalid messages, and
    Celery stops the worker as on an unrecoverable error (found by the fault tests with
    Celery 5.7). Only the constructor is guarded: it parses and runs nothing, so an error
    in it can only be the message's.
    """

    def __init__(self, message: Any, *args: Any, **kwargs: Any) -> None:
        try:
            super().__init__(message, *args, **kwargs)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InvalidTaskError(f"malformed task message: {exc!r}") from exc


def _task_options(kind: jobs.JobKind, settings: Settings) -> dict[str, Any]:
    return _options(kind.name, kind.task_name, settings)


def _options(kind: str, task_name: str, settings: Settings) -> dict[str, Any]:
    """A task's options: the time limits (and retries) of its kind, user jobs' included."""
    soft, hard = settings.time_limits(kind)
    options: dict[str, Any] = {
        "name": task_name,
        "bind": True,
        "Request": CheckedRequest,
        # 0 turns the soft limit off: the job is stopped at the hard one only
        "soft_time_limit": soft or None,
        "time_limit": hard,
    }
    if kind in settings.retried_kinds():
        options.update(
            autoretry_for=RETRY_ON,
            max_retries=settings.max_retries,
            retry_backoff=settings.retry_backoff_s,
            retry_backoff_max=settings.retry_backoff_max_s,
            retry_jitter=settings.retry_jitter,
        )
    return options


def _check_settings(settings: Settings) -> None:
    """Refuse to start on settings that would not do what they say: a kind the catalogue
    lacks (a typo), or time limits Celery would apply differently."""
    named = (
        settings.retried_kinds()
        | set(settings.soft_time_limit_s_by_kind)
        | set(settings.time_limit_s_by_kind)
    )
    kinds = (*jobs.KINDS, userjobs.USER_KIND)
    unknown = sorted(named - set(kinds))
    if unknown:
        raise ValueError(f"unknown job kinds in the settings: {', '.join(unknown)}")
    for kind in kinds:
        soft, hard = settings.time_limits(kind)
        # Celery's prefork pool arms the hard limit only once the soft one has fired: a soft
        # limit at or above the hard one would silently move the kill to the soft limit
        if soft and soft >= hard:
            raise ValueError(
                f"{kind}: the soft time limit ({soft:g} s) must be below the hard one "
                f"({hard:g} s); 0 turns it off"
            )
        if hard <= 0 or soft < 0:
            raise ValueError(f"{kind}: time limits must be positive (soft: 0 for none)")
    longest = max(settings.time_limits(kind)[1] for kind in kinds)
    if longest >= settings.visibility_timeout:
        log.warning(
            "a job may run %.0f s, longer than the visibility timeout (%d s): a job still "
            "running past it is delivered to a worker a second time",
            longest,
            settings.visibility_timeout,
        )


def _register(kind: jobs.JobKind, settings: Settings) -> Task:
    @app.task(**_task_options(kind, settings))  # type: ignore[untyped-decorator]
    def run_job(self: Task, **kwargs: Any) -> dict[str, Any]:
        started = time.time()
        sent = getattr(self.request, jobs.SENT_HEADER, None)
        params = kind.validate(kwargs)
        value = kind.run(_context, params)
        return jobs.envelope(value, hooks.pool_name, sent, started)

    return run_job


def _register_user(job: userjobs.UserJob, settings: Settings) -> Task:
    options = _options(userjobs.USER_KIND, job.task_name, settings)

    @app.task(**options)  # type: ignore[untyped-decorator]
    def run_user_job(self: Task, **kwargs: Any) -> dict[str, Any]:
        started = time.time()
        sent = getattr(self.request, jobs.SENT_HEADER, None)
        outcome = userjobs.measured_call(job, kwargs)
        return userjobs.envelope(outcome, hooks.pool_name, sent, started)

    return run_user_job


_check_settings(get_settings())
TASKS: dict[str, Task] = {
    name: _register(kind, get_settings()) for name, kind in jobs.CATALOGUE.items()
}
# the modules of POOLLAB_JOBS: one that cannot be imported stops the worker at start-up
# with the reason, rather than leaving its jobs unregistered
USER_TASKS: dict[str, Task] = {
    name: _register_user(job, get_settings()) for name, job in userjobs.registered().items()
}
if USER_TASKS:
    log.info("user jobs: %s", ", ".join(sorted(USER_TASKS)))
