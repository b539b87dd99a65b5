"""Supervision of the consumer's background tasks: retried with backoff, or the process ends.

Every task beside the fetch loop (the result writer, the heartbeat, the restore sweep, the
remote-control responder, the CPU pool's warm-up) runs under :func:`supervise`. A failure is
never silent:

* **transient** (:func:`transient`: the connection dropped or timed out, Redis answers
  ``OOM`` at ``maxmemory`` with ``noeviction``, ``READONLY`` on a replica, ``LOADING``,
  ``BUSY``, ``MASTERDOWN``, ``TRYAGAIN``, ``CLUSTERDOWN``): logged as a warning and the task
  is started again after a backoff (:class:`poollab.backoff.Backoff`);
* **anything else** (a permission refused, a wrong type, a bug): logged with its traceback
  and handed to ``fatal``: the consumer stops at once and exits non-zero, so that whatever
  supervises the process (compose's restart policy, ``poollab up``) starts it again. Jobs
  whose results were not written are not acknowledged: they come back after the
  visibility timeout.

A task that returns although it was meant to run for ever is started again too (after a
backoff); one meant to finish (``once=True``) just ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import (
    ClusterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from poollab.backoff import Backoff

log = logging.getLogger(__name__)

# error codes of a Redis reply that say "not now" rather than "never": the same command
# can succeed later without anything changed on the consumer's side
TRANSIENT_CODES = frozenset(
    {"OOM", "READONLY", "LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS"}
)


def error_code(exc: BaseException) -> str:
    """The error code a Redis error reply starts with (``OOM``, ``WRONGTYPE``...), or ''."""
    text = str(exc).lstrip("-")
    return text.split(" ", 1)[0] if text[:1].isupper() else ""


def transient(exc: BaseException) -> bool:
    """Whether retrying the same Redis call later may succeed (see the module's docstring).

    redis-py maps most codes to exception types of their own and strips the code from the
    message (``OutOfMemoryError``, ``ReadOnlyError``, ``BusyLoadingError``...); the others
    are recognised by the code the message starts with.
    """
    if isinstance(
        exc,
        RedisConnectionError  # BusyLoadingError (LOADING) among them
        | RedisTimeoutError
        | OSError
        | OutOfMemoryError
        | ReadOnlyError
        | TryAgainError
        | ClusterDownError,  # MasterDownError among them
    ):
        return True
    if isinstance(exc, ResponseError):
        return error_code(exc) in TRANSIENT_CODES
    return False


async def supervise(
    name: str,
    run: Callable[[], Awaitable[None]],
    fatal: Callable[[str, BaseException], None],
    *,
    once: bool = False,
    first_s: float = 0.1,
) -> None:
    """Run ``run()`` until cancelled, as the module's docstring says."""
    backoff = Backoff(first=first_s)
    loop = asyncio.get_running_loop()
    while True:
        began = loop.time()
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not transient(exc):
                log.critical(
                    "%s failed and cannot be retried (%s: %s); the consumer stops (exit 1)",
                    name,
                    type(exc).__name__,
                    exc,
                    exc_info=exc,
                )
                fatal(name, exc)
                return
            if loop.time() - began > 2 * backoff.cap:
                backoff.reset()  # it ran well for a while: this is a new failure, not a streak
            delay = backoff.next()
            log.warning("%s failed: %s; starting it again in %.1fs", name, exc, delay)
        else:
            if once:
                return
            delay = backoff.next()
            log.error("%s ended unexpectedly; starting it again in %.1fs", name, delay)
        await asyncio.sleep(delay)
