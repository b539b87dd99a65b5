"""The stop helpers, with real signals sent to a real process."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator

import pytest

from poollab.stopping import Stop, StopSignals, signals_ignored

# the child reports each step on its own line, so the test signals it at the right moment
CHILD = textwrap.dedent(
    """
    import signal, sys, time
    from poollab.stopping import Stop, StopSignals

    raise_as = {"Stop": Stop, "KeyboardInterrupt": KeyboardInterrupt}[sys.argv[1]]
    with StopSignals(raise_as=raise_as) as signals:
        try:
            print("running", flush=True)
            time.sleep(60)
            print("slept through", flush=True)
        except raise_as as exc:
            print(f"caught {type(exc).__name__} {exc}", flush=True)
        finally:
            signals.ignore()
            print("stopping", flush=True)
            time.sleep(1.0)
            print("stopped", flush=True)
    print("restored", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)
    """
)

IGNORING_CHILD = textwrap.dedent(
    """
    import signal, time
    from poollab.stopping import signals_ignored

    with signals_ignored():
        print("ignoring", flush=True)
        time.sleep(1.0)
        print("survived", flush=True)
    print("restored", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)
    """
)


@pytest.fixture
def spawn() -> Iterator[list[subprocess.Popen[str]]]:
    children: list[subprocess.Popen[str]] = []
    yield children
    for child in children:
        if child.poll() is None:
            child.kill()
            child.wait(10)


def _start(children: list[subprocess.Popen[str]], code: str, *args: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    children.append(child)
    return child


def _expect(child: subprocess.Popen[str], line: str) -> None:
    assert child.stdout is not None
    got = child.stdout.readline().strip()
    assert got == line, (got, child.stderr.read() if child.stderr and not got else "")


@pytest.mark.parametrize("raise_as", ["Stop", "KeyboardInterrupt"])
def test_the_first_sigterm_raises_and_a_second_does_not_cut_the_stop_short(
    spawn: list[subprocess.Popen[str]], raise_as: str
) -> None:
    child = _start(spawn, CHILD, raise_as)
    _expect(child, "running")
    child.send_signal(signal.SIGTERM)
    _expect(child, f"caught {raise_as} SIGTERM")
    _expect(child, "stopping")
    child.send_signal(signal.SIGTERM)  # ignored: the stop is under way
    child.send_signal(signal.SIGINT)
    _expect(child, "stopped")
    _expect(child, "restored True")
    assert child.wait(10) == 0


def test_sigint_is_a_stop_signal_too(spawn: list[subprocess.Popen[str]]) -> None:
    child = _start(spawn, CHILD, "Stop")
    _expect(child, "running")
    child.send_signal(signal.SIGINT)
    _expect(child, "caught Stop SIGINT")
    _expect(child, "stopping")
    _expect(child, "stopped")
    assert child.wait(10) == 0


def test_signals_ignored_survives_sigterm_and_puts_the_handler_back(
    spawn: list[subprocess.Popen[str]],
) -> None:
    child = _start(spawn, IGNORING_CHILD)
    _expect(child, "ignoring")
    child.send_signal(signal.SIGTERM)
    _expect(child, "survived")
    _expect(child, "restored True")
    assert child.wait(10) == 0


def test_outside_the_main_thread_both_helpers_do_nothing() -> None:
    before = signal.getsignal(signal.SIGTERM)
    errors: list[BaseException] = []

    def in_thread() -> None:
        try:
            with StopSignals() as signals:
                signals.ignore()
            with signals_ignored():
                pass
        except BaseException as exc:  # reported to the main thread, where pytest sees it
            errors.append(exc)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(10)
    assert not errors
    assert signal.getsignal(signal.SIGTERM) is before


def test_stop_goes_through_an_except_exception() -> None:
    """A health check's or a client library's `except Exception` must not swallow a stop."""
    caught_by_exception = False
    with pytest.raises(Stop):
        try:
            raise Stop("SIGTERM")
        except Exception:
            caught_by_exception = True
    assert not caught_by_exception
