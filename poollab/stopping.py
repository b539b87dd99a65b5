"""Stopping a long-running command on SIGTERM or Ctrl-C, and not being cut short while it stops.

A command that runs a lab (``poollab up``, ``soak``, ``bench``) must stop its processes
whatever ends it: Ctrl-C, a ``kill``, a container runtime's SIGTERM. :class:`StopSignals`
turns the first SIGTERM or SIGINT into an exception where the command runs, so its
``finally`` clauses stop the lab; :meth:`StopSignals.ignore` (or :func:`signals_ignored`)
then keeps a second signal from interrupting that graceful stop half-way.

Python delivers signals to the main thread only, and only it may install handlers: from any
other thread both helpers do nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)


class Stop(BaseException):
    """A stop signal arrived; its name (``SIGTERM``, ``SIGINT``) is the message.

    A :class:`BaseException`, like :class:`KeyboardInterrupt`: it may arrive inside any code
    at all (a health check, a client library's retry loop), and an ``except Exception`` there
    must not swallow it and carry on as if nothing had been asked.
    """


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class StopSignals:
    """While active, the first of ``signals`` raises ``raise_as(<signal name>)``.

    On exit every handler is put back as it was, straight from whatever this context left
    installed (so there is no moment at which a late signal would raise again).
    """

    def __init__(
        self,
        signals: tuple[signal.Signals, ...] = STOP_SIGNALS,
        raise_as: type[BaseException] = Stop,
    ) -> None:
        self.signals = signals
        self.raise_as = raise_as
        self._previous: dict[signal.Signals, Any] = {}

    def _raise(self, signum: int, frame: FrameType | None) -> None:
        raise self.raise_as(signal.Signals(signum).name)

    def __enter__(self) -> StopSignals:
        if _in_main_thread():
            self._previous = {sig: signal.signal(sig, self._raise) for sig in self.signals}
        return self

    def ignore(self) -> None:
        """From now until exit, ignore these signals: the graceful stop has begun."""
        for sig in self._previous:
            signal.signal(sig, signal.SIG_IGN)

    def __exit__(self, *exc_info: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}


@contextlib.contextmanager
def signals_ignored(signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> Iterator[None]:
    """Ignore these signals inside the block, then put their handlers back."""
    if not _in_main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
