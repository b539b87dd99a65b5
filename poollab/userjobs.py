"""The user's own jobs: callables from the modules named in ``POOLLAB_JOBS``.

Every consumer (each Celery pool and the asyncio consumer) and the producer import the same
modules at start-up and register each public function defined in them as the task
``poollab.user.<module>.<function>``. A request can only name what was registered this way:
nothing here imports a name that came from a message or a request (the producer looks the
task up in :func:`registered`, never through :func:`load_spec`).

A job's params are its keyword arguments, JSON in and JSON out: a value JSON cannot encode
is turned into a ``TypeError`` naming its type (:func:`check_json`), stored as the job's
failure like any exception.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Any

from poollab import jobs

USER_KIND = "user"
USER_TASK_PREFIX = "poollab.user."


@dataclass(frozen=True)
class UserJob:
    """One registered callable."""

    # "mypkg.tasks:resize"
    spec: str
    module: str
    function: str
    fn: Callable[..., Any]
    is_async: bool

    @property
    def task_name(self) -> str:
        return f"{USER_TASK_PREFIX}{self.module}.{self.function}"


class UserJobError(ValueError):
    """A user job that cannot be registered: bad spec, module not importable, not a callable."""


def parse_spec(spec: str) -> tuple[str, str]:
    """``"a.b:c"`` -> ``("a.b", "c")``."""
    module, sep, function = spec.strip().partition(":")
    if not sep or not _dotted(module) or not function.isidentifier():
        raise UserJobError(
            f"{spec!r} is not MODULE:FUNCTION (e.g. mypkg.tasks:resize): a dotted module "
            "name, a colon, a function name"
        )
    return module, function


def _dotted(name: str) -> bool:
    return bool(name) and all(part.isidentifier() for part in name.split("."))


def _import(module: str) -> ModuleType:
    if not _dotted(module):
        raise UserJobError(
            f"{module!r} is not a module name (dotted identifiers, e.g. mypkg.tasks)"
        )
    # user modules live in the directory the command runs from; appended, so that a module
    # there cannot shadow the standard library or the lab's own packages
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UserJobError(
            f"cannot import {module!r}: {exc} (it must be importable from the working "
            "directory, PYTHONPATH or an installed package)"
        ) from exc
    except Exception as exc:
        raise UserJobError(f"importing {module!r} failed: {type(exc).__name__}: {exc}") from exc


def _job(module: str, function: str, fn: Any) -> UserJob:
    if not callable(fn):
        raise UserJobError(f"{module}:{function} is a {type(fn).__name__}, not a callable")
    return UserJob(
        spec=f"{module}:{function}",
        module=module,
        function=function,
        fn=fn,
        is_async=inspect.iscoroutinefunction(fn),
    )


def load_spec(spec: str) -> UserJob:
    """Import MODULE and find FUNCTION in it (the cwd is importable)."""
    module, function = parse_spec(spec)
    found = getattr(_import(module), function, None)
    if found is None:
        raise UserJobError(f"module {module!r} has no {function!r}")
    return _job(module, function, found)


def load_modules(modules: Sequence[str]) -> dict[str, UserJob]:
    """Every public function each module defines (not imports), by task name."""
    loaded: dict[str, UserJob] = {}
    for name in modules:
        module = _import(name)
        found = [
            _job(name, attr, value)
            for attr, value in vars(module).items()
            if not attr.startswith("_")
            and inspect.isfunction(value)
            and value.__module__ == module.__name__
        ]
        if not found:
            raise UserJobError(
                f"module {name!r} defines no public function (names starting with _ are skipped)"
            )
        loaded.update((job.task_name, job) for job in found)
    return loaded


def modules_from_env(value: str | None = None) -> list[str]:
    """The modules of ``POOLLAB_JOBS`` (or of ``value``): comma-separated, blanks dropped."""
    if value is None:
        from poollab.settings import get_settings

        value = get_settings().jobs
    return list(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))


@lru_cache(maxsize=1)
def registered() -> dict[str, UserJob]:
    """The user jobs of this process: ``POOLLAB_JOBS``'s, loaded once."""
    return load_modules(modules_from_env())


def by_spec(jobs: dict[str, UserJob]) -> dict[str, UserJob]:
    """The same jobs keyed by MODULE:FUNCTION, as requests name them."""
    return {job.spec: job for job in jobs.values()}


# native threads a gevent worker may run async user jobs in at once (gevent's default: 10)
GEVENT_ASYNC_THREADS = 100


def run_blocking(job: UserJob, params: dict[str, Any]) -> Any:
    """``fn(**params)``; an ``async def`` runs with ``asyncio.run``: an event loop per job.

    Under gevent, each ``asyncio.run`` goes to a native thread of gevent's hub threadpool,
    the greenlet waiting for it cooperatively: asyncio keeps its running loop per OS thread,
    and every greenlet shares one, so a second greenlet's ``asyncio.run`` while the first's
    loop waits would fail with "cannot be called from a running event loop".
    """
    if not job.is_async:
        return job.fn(**params)
    if _gevent_patched():
        import gevent

        threadpool = gevent.get_hub().threadpool
        threadpool.maxsize = max(threadpool.maxsize, GEVENT_ASYNC_THREADS)
        return threadpool.apply(asyncio.run, (job.fn(**params),))
    return asyncio.run(job.fn(**params))


def _gevent_patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


@dataclass(frozen=True)
class Outcome:
    """A user job's value and the RSS (KiB) of the process that ran it, before and after."""

    value: Any
    rss_before_kb: int | None
    rss_after_kb: int | None


_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# (pid, fd) of /proc/self/statm: /proc/self is resolved when opened, so a forked child (a
# prefork one) opens its own; kept open, a read is ~2 us where open+read+close is ~20 us
_statm: tuple[int, int] | None = None


def rss_kb() -> int | None:
    """This process's resident set now, from /proc/self/statm."""
    global _statm
    try:
        pid = os.getpid()
        if _statm is None or _statm[0] != pid:
            _statm = (pid, os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC))
        return int(os.pread(_statm[1], 128, 0).split()[1]) * _PAGE_KB
    except (OSError, ValueError, IndexError):
        return None


def measured_call(job: UserJob, params: dict[str, Any]) -> Outcome:
    """:func:`run_blocking` and :func:`check_json`, with the RSS around them.

    Module-level and returning plain data, so that the asyncio consumer's process executor
    can run it in a child: the RSS is then the child's, the process that ran the job.
    """
    before = rss_kb()
    value = check_json(run_blocking(job, params))
    return Outcome(value, before, rss_kb())


def envelope(outcome: Outcome, pool: str, sent: float | None, started: float) -> dict[str, Any]:
    """:func:`poollab.jobs.envelope` plus ``rss_kb``: a job that leaks shows it there (in a
    pool that runs jobs side by side, other jobs' memory moves it too)."""
    result = jobs.envelope(outcome.value, pool, sent, started)
    result["rss_kb"] = {"before": outcome.rss_before_kb, "after": outcome.rss_after_kb}
    return result


def check_json(value: Any) -> Any:
    """``value`` if JSON can encode it; else a TypeError naming the type that it cannot."""
    try:
        json.dumps(value, default=_refuse)
    except TypeError as exc:
        message = str(exc)
        if not message.startswith("user job returned"):  # a dict key JSON has no form for
            message = f"user job returned a value JSON cannot encode: {message}"
        raise TypeError(message) from None
    except ValueError as exc:  # a value that holds itself
        raise TypeError(f"user job returned a value JSON cannot encode: {exc}") from None
    return value


def _refuse(value: Any) -> Any:
    raise TypeError(f"user job returned a {type(value).__name__}, which JSON cannot encode")
